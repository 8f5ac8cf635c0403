package backend

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/society-sim/society/scenarios"
	"github.com/society-sim/society/sim"
)

// A probe asks the scenario's OpenAI-compatible models, with the modes the
// scenario sets, and names the ones in process as nothing to probe.
func TestProbeTargets(t *testing.T) {
	sc := estimateScenario(t, "http://127.0.0.1:1", "http://127.0.0.1:2")
	targets, synthetic := ProbeTargets(sc)
	if len(targets) != 2 || targets[0].Client.Name != "on-server" || targets[0].Mode != "distribution" ||
		targets[1].Client.Name != "elsewhere" || targets[1].Mode != "sample" || targets[1].Client.BaseURL != "http://127.0.0.1:2/v1" {
		t.Errorf("got targets %+v, want on-server (distribution) and elsewhere (sample, at :2)", targets)
	}
	if len(synthetic) != 1 || synthetic[0] != "in-process" {
		t.Errorf("got synthetic %q, want [in-process]", synthetic)
	}
}

// The probe's question comes from the scenario's questionnaire, the
// PVQ-40 without a scenario, and an instrument that cannot be loaded is
// bad input.
func TestProbeQuestion(t *testing.T) {
	q, err := ProbeQuestion(nil)
	if err != nil || q.Instrument == nil || q.Instrument.Name != "pvq40" {
		t.Fatalf("no scenario: got %+v, %v; want the pvq40", q, err)
	}
	sc := estimateScenario(t, "http://127.0.0.1:1", "http://127.0.0.1:2")
	sc.Questionnaires[0] = scenarios.Questionnaire{Name: "mine", File: filepath.Join(t.TempDir(), "absent.toml")}
	if _, err := ProbeQuestion(sc); !errors.Is(err, sim.ErrBadInput) {
		t.Errorf("absent instrument file: got %v, want sim.ErrBadInput", err)
	}
}
