package bus

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/society-sim/society/agent"
	"github.com/society-sim/society/questionnaires"
)

// Wire formats. Tasks are small and rare, so they are JSON; answer batches
// carry one byte per agent and dominate the traffic, so they are a compact
// binary record:
//
//	'A' version(2) model instrument item round shard first len(codes) codes
//	count(invalid) {agent raw rawbytes reason}...
//
// with strings as uvarint length + bytes and integers as uvarints. Version
// 1 had no rawbytes (the raw text was kept whole); it is still read.

const (
	batchMagic   = 'A'
	batchVersion = 2
	taskVersion  = 1
	maxString    = 1 << 20
)

// ErrBadMessage marks a message that is not in a format this version reads;
// hosts and consumers count and skip such messages instead of stopping.
var ErrBadMessage = errors.New("bad message")

// TaskMsg is the wire form of an agent.Task for one shard.
type TaskMsg struct {
	V          int    `json:"v"`
	Model      string `json:"model"`
	Instrument string `json:"instrument"`
	Items      []int  `json:"items"`
	Round      int    `json:"round"`
	Shard      int    `json:"shard"`
	Style      string `json:"style,omitempty"`
	// Game makes the task a round of the Paired Charity Game.
	Game *GameMsg `json:"game,omitempty"`
}

// EncodeTask encodes a task message.
func EncodeTask(t TaskMsg) []byte {
	t.V = taskVersion
	if t.Game != nil {
		t.V = gameTaskVersion
	}
	b, _ := json.Marshal(t) // cannot fail: plain fields
	return b
}

// DecodeTask decodes a task message.
func DecodeTask(data []byte) (TaskMsg, error) {
	var t TaskMsg
	if err := json.Unmarshal(data, &t); err != nil {
		return t, fmt.Errorf("%w: task: %v", ErrBadMessage, err)
	}
	if t.V != taskVersion && t.V != gameTaskVersion {
		return t, fmt.Errorf("%w: task version %d, want %d", ErrBadMessage, t.V, taskVersion)
	}
	if err := t.Game.check(t.V); err != nil {
		return t, err
	}
	if t.Model == "" || t.Instrument == "" || len(t.Items) == 0 || t.Shard < 0 || t.Round < 0 {
		return t, fmt.Errorf("%w: task lacks model, instrument, items or a valid shard", ErrBadMessage)
	}
	return t, nil
}

// AppendBatch appends the wire form of b to dst.
func AppendBatch(dst []byte, b *agent.Batch) []byte {
	dst = append(dst, batchMagic, batchVersion)
	dst = appendString(dst, b.Model)
	dst = appendString(dst, b.Instrument)
	dst = binary.AppendUvarint(dst, uint64(b.Item))
	dst = binary.AppendUvarint(dst, uint64(b.Round))
	dst = binary.AppendUvarint(dst, uint64(b.Shard))
	dst = binary.AppendUvarint(dst, uint64(b.First))
	dst = binary.AppendUvarint(dst, uint64(len(b.Codes)))
	dst = append(dst, b.Codes...)
	dst = binary.AppendUvarint(dst, uint64(len(b.Invalid)))
	for _, iv := range b.Invalid {
		dst = binary.AppendUvarint(dst, uint64(iv.Agent))
		dst = appendString(dst, iv.Raw)
		dst = binary.AppendUvarint(dst, uint64(max(iv.RawBytes, len(iv.Raw))))
		dst = appendString(dst, iv.Reason)
	}
	return dst
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

type reader struct {
	b   []byte
	err error
}

func (r *reader) uvarint() int {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > 1<<31 {
		r.err = errors.New("bad integer")
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b) {
		r.err = errors.New("truncated")
		return nil
	}
	out := r.b[:n:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) string() string {
	n := r.uvarint()
	if n > maxString {
		r.err = errors.New("string too long")
		return ""
	}
	return string(r.bytes(n))
}

// DecodeBatch decodes an answer batch. Codes alias data.
func DecodeBatch(data []byte) (*agent.Batch, error) {
	if len(data) < 2 || data[0] != batchMagic {
		return nil, fmt.Errorf("%w: not an answer batch", ErrBadMessage)
	}
	version := data[1]
	if version != batchVersion && version != 1 {
		return nil, fmt.Errorf("%w: answer batch version %d, want %d", ErrBadMessage, version, batchVersion)
	}
	r := &reader{b: data[2:]}
	b := &agent.Batch{}
	b.Model = r.string()
	b.Instrument = r.string()
	b.Item = r.uvarint()
	b.Round = r.uvarint()
	b.Shard = r.uvarint()
	b.First = r.uvarint()
	b.Codes = r.bytes(r.uvarint())
	n := r.uvarint()
	if r.err == nil && n > len(b.Codes) {
		r.err = errors.New("more invalid answers than answers")
	}
	for i := 0; i < n && r.err == nil; i++ {
		iv := agent.Invalid{Agent: r.uvarint(), Raw: r.string()}
		iv.RawBytes = len(iv.Raw)
		if version >= 2 {
			iv.RawBytes = r.uvarint()
		}
		iv.Reason = r.string()
		if r.err == nil && (iv.Agent < b.First || iv.Agent >= b.First+len(b.Codes)) {
			r.err = fmt.Errorf("invalid answer of agent %d outside the batch", iv.Agent)
		}
		b.Invalid = append(b.Invalid, iv)
	}
	if r.err == nil && len(r.b) != 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return nil, fmt.Errorf("%w: answer batch: %v", ErrBadMessage, r.err)
	}
	return b, nil
}

// MsgID is the de-duplication id of a batch: the same answers published
// twice (a retry, a restarted host) collapse into one stored message. The
// first agent tells apart the parts of a batch split to fit the server's
// payload limit (SplitBatch).
func MsgID(run string, b *agent.Batch) string {
	return fmt.Sprintf("%s.%s.%d.%s.%d.%d.%d", run, b.Model, b.Shard, b.Instrument, b.Item, b.Round, b.First)
}

// SplitBatch returns b, or when its wire form is longer than limit bytes,
// parts of it over consecutive agents, each within limit: halves, halved
// again until they fit. Answers are the same whatever the split, and a
// consumer counts each agent's answer once (analysis.Collector), so a part
// sent again after a restart never counts twice. An invalid answer holds
// at most agent.MaxRaw + agent.MaxReason bytes of text, so a part of one
// agent always fits a limit above a few kilobytes; a smaller limit is an
// error.
func SplitBatch(b *agent.Batch, limit int) ([]agent.Batch, error) {
	if n := len(AppendBatch(nil, b)); n <= limit {
		return []agent.Batch{*b}, nil
	} else if len(b.Codes) <= 1 {
		return nil, fmt.Errorf("answer batch of agent %d is %d bytes, more than the limit of %d", b.First, n, limit)
	}
	half := len(b.Codes) / 2
	lo, hi := *b, *b
	lo.Codes, hi.Codes = b.Codes[:half], b.Codes[half:]
	hi.First = b.First + half
	lo.Invalid, hi.Invalid = nil, nil
	for _, iv := range b.Invalid {
		if iv.Agent < hi.First {
			lo.Invalid = append(lo.Invalid, iv)
		} else {
			hi.Invalid = append(hi.Invalid, iv)
		}
	}
	a, err := SplitBatch(&lo, limit)
	if err != nil {
		return nil, err
	}
	c, err := SplitBatch(&hi, limit)
	if err != nil {
		return nil, err
	}
	return append(a, c...), nil
}

// gameTaskVersion marks a task that carries a game round. Hosts that do
// not know games refuse it as a version they cannot read, rather than
// answering the round as a plain questionnaire.
const gameTaskVersion = 2

// GameMsg is the part of a task message that makes it a round of the
// Paired Charity Game for one shard: the decision instrument asked after
// the probable choice, every agent's memory (so that hosts keep no game
// state: a restarted host plays on exactly as before) and the rate shown.
type GameMsg struct {
	Decision string `json:"decision"`
	// First is the id of the agent whose memory comes first; it must be
	// the shard's first agent.
	First int `json:"first"`
	// Memories are agent.AppendMemories of the shard's agents in order.
	Memories  []byte `json:"memories"`
	RateShown bool   `json:"rate_shown,omitempty"`
	Rate      int    `json:"rate,omitempty"`
}

func (g *GameMsg) check(version int) error {
	switch {
	case g == nil && version == gameTaskVersion:
		return fmt.Errorf("%w: game task without a game", ErrBadMessage)
	case g == nil:
		return nil
	case version != gameTaskVersion:
		return fmt.Errorf("%w: game round in a task of version %d", ErrBadMessage, version)
	case g.Decision == "" || g.First < 0 || g.Rate < 0 || g.Rate > 100:
		return fmt.Errorf("%w: game round lacks a decision instrument, or has a bad first agent or rate", ErrBadMessage)
	}
	return nil
}

// GameTask is the agents' view of a task's game round for shard sh, with
// the decision instrument resolved; nil for a task without a game.
func GameTask(t TaskMsg, sh *agent.Shard, instrument func(string) (*questionnaires.Instrument, bool)) (*agent.GameTask, error) {
	g := t.Game
	if g == nil {
		return nil, nil
	}
	dec, ok := instrument(g.Decision)
	if !ok {
		return nil, fmt.Errorf("%w: unknown decision instrument %q", ErrBadMessage, g.Decision)
	}
	if g.First != sh.First {
		return nil, fmt.Errorf("%w: game round for agents from %d sent to shard %d, which starts at %d", ErrBadMessage, g.First, sh.ID, sh.First)
	}
	mems, err := agent.ParseMemories(g.Memories, len(sh.Agents))
	if err != nil {
		return nil, fmt.Errorf("%w: shard %d: %v", ErrBadMessage, sh.ID, err)
	}
	return &agent.GameTask{Decision: dec, Memory: mems, RateShown: g.RateShown, Rate: g.Rate}, nil
}
