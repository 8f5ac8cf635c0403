package bus

import (
	"encoding/json"
	"fmt"
)

// Progress is what the analysis service tells about a run on the run's
// results subject, about once a second and when it finishes: how many
// answers it holds, how many messages it had to reject, and where the
// results went. It is informational (core NATS, at most once): nothing
// waits on a particular progress message, only on the counts moving.
type Progress struct {
	V        int      `json:"v"`
	Run      string   `json:"run"`
	Expected int64    `json:"expected"`
	Valid    int64    `json:"valid"`
	Invalid  int64    `json:"invalid"`
	Bad      int64    `json:"bad"`
	State    RunState `json:"state,omitempty"`
	Dir      string   `json:"dir,omitempty"`
	Host     string   `json:"host,omitempty"`
}

const progressVersion = 1

// EncodeProgress encodes a progress message.
func EncodeProgress(p Progress) []byte {
	p.V = progressVersion
	b, _ := json.Marshal(p) // cannot fail: plain fields
	return b
}

// DecodeProgress decodes and checks a progress message.
func DecodeProgress(data []byte) (Progress, error) {
	var p Progress
	if err := json.Unmarshal(data, &p); err != nil {
		return Progress{}, fmt.Errorf("%w: progress: %v", ErrBadMessage, err)
	}
	if p.V != progressVersion {
		return Progress{}, fmt.Errorf("%w: progress version %d, want %d", ErrBadMessage, p.V, progressVersion)
	}
	if p.Run == "" || p.Expected < 0 || p.Valid < 0 || p.Invalid < 0 || p.Bad < 0 || p.Valid+p.Invalid > p.Expected {
		return Progress{}, fmt.Errorf("%w: progress counts do not add up", ErrBadMessage)
	}
	return p, nil
}
