package modelserver

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/society-sim/society/internal/benchcpu"
)

// srvBenchBody is the body the client sends for one sample-mode answer
// (one PVQ-40 item, a Power persona, n = 1).
const srvBenchBody = `{"model":"test-model","messages":[{"role":"system","content":"Imagine you are someone for whom power matters more than anything else. What you care about most is social status and prestige, and control or dominance over people and resources."},{"role":"user","content":"Below are short descriptions of different people. Read each description and think about how much the person described is or is not like you. Answer with the number that best says how much that person is like you.\n\nThis person wants others to see how capable they are. Being admired for what they can do means a lot to them.\n\nAnswer with a single number from 1 to 6, where 1 = Not like me at all, 2 = Not like me, 3 = A little like me, 4 = Somewhat like me, 5 = Like me, 6 = Very much like me. Reply with the number only."}],"max_tokens":32,"n":1,"stream":false,"seed":5710426967952189655,"temperature":1}`

// BenchmarkServeChat is the server's cost per sample-mode request: the
// handler alone (Handler) and through net/http on loopback (HTTP).
func BenchmarkServeChat(b *testing.B) {
	s := New(srvTestSynthetic(b), Options{Seed: 1})
	body := []byte(srvBenchBody)
	b.Run("Handler", func(b *testing.B) {
		b.ReportAllocs()
		defer benchcpu.Report(b)()
		for b.Loop() {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", bytes.NewReader(body))
			s.ServeHTTP(w, r)
			if w.Code != http.StatusOK {
				b.Fatal(w.Code, w.Body.String())
			}
		}
	})
	b.Run("HTTP", func(b *testing.B) {
		ts := httptest.NewServer(s)
		defer ts.Close()
		b.ReportAllocs()
		defer benchcpu.Report(b)()
		for b.Loop() {
			resp, err := http.Post(ts.URL+"/v1/chat/completions", "application/json", bytes.NewReader(body))
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
