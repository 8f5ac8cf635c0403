package main

import (
	"strings"
	"testing"
)

// TestRoleCommandsBadInput: the NATS roles refuse bad flags with exit 2.
func TestRoleCommandsBadInput(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"agents"}, "--nats URL is required"},
		{[]string{"agents", "--nats", "nats://127.0.0.1:1", "--tasks", "0"}, "--tasks"},
		{[]string{"agents", "--nats", "nats://127.0.0.1:1", "extra"}, "takes no arguments"},
		{[]string{"analyze"}, "--nats URL is required"},
		{[]string{"analyze", "--nats", "nats://u:p@127.0.0.1:1"}, "carries credentials"},
		{[]string{"run", "--resume", "x"}, "need --nats"},
		{[]string{"run", "--nats", "nats://127.0.0.1:1", "--max-deliver", "0"}, "--max-deliver"},
		{[]string{"run", "--nats", "nats://127.0.0.1:1", "--ack-wait", "1ms"}, "--ack-wait"},
		{[]string{"run", "--nats", "nats://127.0.0.1:1", "--progress", "bar"}, "--progress: want auto, lines or json"},
		{[]string{"run", "--nats", "nats://127.0.0.1:1", "--progress-every", "5ms"}, "--progress-every: must be at least 100ms"},
	}
	for _, c := range cases {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			_, stderr, code := runCLI(t, c.args...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("got exit %d and %q, want exit 2 saying %q", code, stderr, c.want)
			}
		})
	}
}
