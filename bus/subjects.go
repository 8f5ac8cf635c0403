package bus

import (
	"fmt"
	"strings"
)

// Subjects names the subjects of one run. Every subject starts with
// "society.<run>." so that runs sharing a NATS server never see each other's
// traffic.
type Subjects struct {
	Run string
}

func (s Subjects) prefix() string { return "society." + token(s.Run) }

// Tasks is the task subject of one shard.
func (s Subjects) Tasks(shard int) string { return fmt.Sprintf("%s.tasks.%d", s.prefix(), shard) }

// AllTasks matches every shard's task subject.
func (s Subjects) AllTasks() string { return s.prefix() + ".tasks.*" }

// Answers is the answer subject of one shard.
func (s Subjects) Answers(shard int) string { return fmt.Sprintf("%s.answers.%d", s.prefix(), shard) }

// AllAnswers matches every shard's answer subject.
func (s Subjects) AllAnswers() string { return s.prefix() + ".answers.*" }

// Results carries the analysis service's progress and final summary.
func (s Subjects) Results() string { return s.prefix() + ".results" }

// Stream is the JetStream stream that stores the run's answers.
func (s Subjects) Stream() string {
	return "SOCIETY_ANSWERS_" + strings.ReplaceAll(token(s.Run), "-", "_")
}

// token makes a run id safe as one subject token and as part of a stream name.
func token(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "run"
	}
	return b.String()
}
