package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestModelServerFlags(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string // every problem named in the error
	}{
		{"zero slots", []string{"--slots", "0"}, []string{"--slots"}},
		{"error rate above one", []string{"--error-rate", "2"}, []string{"--error-rate"}},
		{"negative garbage rate", []string{"--garbage-rate", "-0.1"}, []string{"--garbage-rate"}},
		{"timeout rate NaN", []string{"--timeout-rate", "NaN"}, []string{"--timeout-rate"}},
		{"rates above one together", []string{"--error-rate", "0.6", "--timeout-rate", "0.6"}, []string{"--error-rate + --timeout-rate"}},
		{"negative latency", []string{"--latency", "-1s"}, []string{"--latency"}},
		{"all interfaces", []string{"--addr", ":8000"}, []string{"--public"}},
		{"non-loopback address", []string{"--addr", "0.0.0.0:8000"}, []string{"not a loopback address"}},
		{"host name", []string{"--addr", "example.com:8000"}, []string{"--public"}},
		{"no port", []string{"--addr", "127.0.0.1"}, []string{"HOST:PORT"}},
		{"unknown flag", []string{"--nope"}, []string{"nope"}},
		{"bad number", []string{"--slots", "many"}, []string{"slots"}},
		{"argument", []string{"extra"}, []string{"no arguments"}},
		{"every problem at once", []string{"--slots", "0", "--error-rate", "2", "--addr", "10.0.0.1:80"}, []string{"--slots", "--error-rate", "--public"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			err := cmdModelServer(context.Background(), c.args, &stdout, &stderr)
			if !errors.Is(err, errUsage) {
				t.Fatalf("got %v, want an error wrapping errUsage", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("got %q, want it to mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "model-server: model-server") {
				t.Errorf("got %q, want the command named once", err)
			}
			if got := exitCode(err, io.Discard); got != 2 {
				t.Errorf("exit code: got %d, want 2", got)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: got %q, want nothing", stdout.String())
			}
		})
	}
}

// TestModelServerServes runs the command on a free loopback port, asks it
// a question and stops it as a signal would.
func TestModelServerServes(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	var stderr bytes.Buffer
	done := make(chan error, 1)
	go func() {
		done <- cmdModelServer(ctx, []string{"--addr", "127.0.0.1:0", "--slots", "4", "--seed", "7", "--models", "synthetic-a"}, pw, &stderr)
		pw.Close()
	}()

	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("read banner: %v (stderr %q)", err, stderr.String())
	}
	const prefix = "society model-server: synthetic respondents (not a language model) on "
	if !strings.HasPrefix(line, prefix) || !strings.HasSuffix(line, "/v1\n") {
		t.Fatalf("banner: got %q, want %q followed by http://ADDR/v1", line, prefix)
	}
	base := strings.TrimSpace(strings.TrimPrefix(line, prefix))
	go io.Copy(io.Discard, pr)

	resp, err := http.Get(strings.TrimSuffix(base, "/v1") + "/health")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("health: got %d, want 200", resp.StatusCode)
	}

	body := `{"model": "synthetic-a", "messages": [{"role": "user", "content": "How much do you like tea? Answer with a single number from 1 to 5."}], "temperature": 0}`
	resp, err = http.Post(base+"/chat/completions", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var out struct {
		Choices []struct {
			Message struct{ Content string } `json:"message"`
		} `json:"choices"`
	}
	err = json.NewDecoder(resp.Body).Decode(&out)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK || len(out.Choices) != 1 {
		t.Fatalf("chat: got status %d, %+v, %v; want 200 and one choice", resp.StatusCode, out, err)
	}
	if got := strings.TrimSpace(out.Choices[0].Message.Content); got == "" {
		t.Errorf("chat answer: got empty text, want an answer")
	}

	// A wrong path and a model the server does not serve are counted in
	// the summary, not only the completions.
	for _, path := range []string{"/v1/nosuch", "/v1/models/other"} {
		resp, err := http.Get(base + strings.TrimPrefix(path, "/v1"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: got %d, want 404", path, resp.StatusCode)
		}
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("after cancel: got %v, want nil", err)
	}
	if !strings.Contains(stderr.String(), `level=INFO msg="model server stopped" requests=1 served=1 `) || !strings.Contains(stderr.String(), " not_found=2 ") {
		t.Errorf("stderr: got %q, want the request counts, 2 not found", stderr.String())
	}
}
