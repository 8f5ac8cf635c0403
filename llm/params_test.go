package llm

import "testing"

func TestMaskURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"http://127.0.0.1:8000/v1", "http://127.0.0.1:8000/v1"},
		{"https://user:sk-secret@api.example.com/v1", "https://xxxxx@api.example.com/v1"},
		{"https://sk-secret@api.example.com/v1", "https://xxxxx@api.example.com/v1"},
		{"https://x.example.com/v1?api-key=sk-secret&api-version=2024", "https://x.example.com/v1?api-key=xxxxx&api-version=2024"},
		{"http://[::1", "(unparseable URL)"},
	} {
		if got := MaskURL(tt.in); got != tt.want {
			t.Errorf("MaskURL(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Params are the configuration with its defaults, the key left out.
func TestClientParams(t *testing.T) {
	t.Setenv("TEST_KEY", "sk-secret")
	c := newClient(t, ClientConfig{Model: "m", BaseURL: "https://u:sk-secret@h.example/v1", APIKeyEnv: "TEST_KEY", Samples: 5})
	p := c.Params()
	if p.BaseURL != "https://xxxxx@h.example/v1" || p.Mode != ModeSample || p.Endpoint != EndpointChat ||
		p.MaxTokens != DefaultMaxTokens || p.Concurrency != DefaultConcurrency || p.Timeout != DefaultTimeout || p.Samples != 5 {
		t.Errorf("got %+v, want the defaults, 5 samples and the URL masked", p)
	}
	if d := newClient(t, ClientConfig{Model: "m"}).Params(); d.BaseURL != defaultBaseURL {
		t.Errorf("base URL: got %q, want %q", d.BaseURL, defaultBaseURL)
	}
}
