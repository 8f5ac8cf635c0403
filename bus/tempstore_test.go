package bus_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/society-sim/society/bus"
)

func storeDirs(t *testing.T, tmp string) map[string]bool {
	t.Helper()
	dirs, err := filepath.Glob(filepath.Join(tmp, "society-nats-*"))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, d := range dirs {
		m[filepath.Base(d)] = true
	}
	return m
}

// TestStaleStoresRemoved: the stores left by processes that died (kill -9,
// a second interrupt) are removed when an embedded server starts; those of
// running processes, and those whose owner cannot be told, are kept; a
// server's own store goes on Shutdown, and at once with RemoveTempStores.
func TestStaleStoresRemoved(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)

	done := exec.Command("true")
	if err := done.Run(); err != nil {
		t.Skipf("no process to outlive: %v", err)
	}
	for name, owner := range map[string]string{
		"society-nats-dead":  strconv.Itoa(done.Process.Pid), // ran and was reaped
		"society-nats-alive": strconv.Itoa(os.Getppid()),
		"society-nats-old":   "", // no owner file
	} {
		dir := filepath.Join(tmp, name)
		if err := os.MkdirAll(filepath.Join(dir, "jetstream"), 0o755); err != nil {
			t.Fatal(err)
		}
		if owner != "" {
			if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(owner+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	srv, err := bus.StartServer(bus.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := storeDirs(t, tmp)
	if got["society-nats-dead"] || !got["society-nats-alive"] || !got["society-nats-old"] || len(got) != 3 {
		t.Fatalf("after start: got stores %v, want the dead owner's removed, the others and the server's own kept", got)
	}
	srv.Shutdown()
	if got := storeDirs(t, tmp); len(got) != 2 {
		t.Errorf("after Shutdown: got stores %v, want the server's own removed", got)
	}

	srv, err = bus.StartServer(bus.ServerOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	bus.RemoveTempStores()
	if got := storeDirs(t, tmp); len(got) != 2 {
		t.Errorf("after RemoveTempStores: got stores %v, want the server's own removed", got)
	}
}
