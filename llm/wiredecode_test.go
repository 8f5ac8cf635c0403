package llm

import (
	"encoding/json"
	"reflect"
	"testing"
)

// scanBodies are chat replies around the shapes scanChat reads: each is
// read by scanChat as json.Unmarshal reads it into a chatReply, or left
// to json.Unmarshal.
var scanBodies = []string{
	`{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"test-model",` +
		`"choices":[{"index":0,"message":{"role":"assistant","content":"4","reasoning_content":null,"tool_calls":[]},` +
		`"logprobs":null,"finish_reason":"stop","stop_reason":null}],` +
		`"usage":{"prompt_tokens":120,"total_tokens":121,"completion_tokens":1,"prompt_tokens_details":null},` +
		`"prompt_logprobs":null}`,
	` {"model":"m","choices":[],"usage":{"prompt_tokens":-0,"completion_tokens":9223372036854775807}} ` + "\n",
	`{"choices":[{"message":{"content":"Like me.\n"},"finish_reason":"length"},{"message":{"content":"caf\u00e9 \ud83d\ude00 \ud800"}}]}`,
	`{"choices":[{"message":{"content":"` + "caf\xc3\xa9 \xff\xfe" + `"}}]}`,
	`{"model":"m","model":"n","choices":[]}`,
	`{"choices":[{"message":{"content":"4"},"message":{"role":"x"}}]}`,
	`{"Model":"m","choices":[]}`,
	`{"choices":[{"Message":{"content":"4"}}]}`,
	`{"choices":[{"message":{"CONTENT":"4"}}]}`,
	`{"choices":[{"message":{"content":"4","MultiContent":null}}]}`,
	`{"choices":[{"message":{"content":"4","multicontent":[]}}]}`,
	`{"choices":[{"message":{"content":"4"}}],"usage":{"prompt_tokens":1.0}}`,
	`{"choices":[{"message":{"content":"4"}}],"usage":{"prompt_tokens":1e3}}`,
	`{"choices":[{"message":{"content":"4"}}],"usage":{"prompt_tokens":9223372036854775808}}`,
	`{"choices":[{"message":{"content":"4"}}],"usage":{"prompt_tokens":-9223372036854775808}}`,
	`{"choices":[{"message":{"content":"4"}}],"usage":{"prompt_tokens":01}}`,
	`{"choices":[{"message":{"content":"4"}}],"usage":{"prompt_tokens":"1"}}`,
	`{"choices":[null]}`,
	`{"choices":null,"usage":null,"model":null,"system_fingerprint":null}`,
	`{"choices":[{"message":null,"finish_reason":null,"logprobs":null}]}`,
	`{"choices":[{"message":{"content":"4"},"logprobs":{"content":[{"token":"4","logprob":-0.5,"bytes":[52],"top_logprobs":[{"token":"4","logprob":-0.5,"bytes":[52]},{"token":"\u0035","logprob":-1.25e1}]}]}}]}`,
	`{"choices":[{"message":{"content":"4"},"logprobs":{"content":[{"token":4}]}}]}`,
	`{"choices":[{"message":{"content":"4"},"logprobs":[]}]}`,
	`{"choices":[{"message":{"content":"4"}}],"x":{"a":[1,-2.5e+3,true,false,null,"s\"\\\/\b\f\n\r\t\u00ff",{}],"b":[]}}`,
	`{"choices":[{"message":{"content":"4"}}],"x":[1,]}`,
	`{"choices":[{"message":{"content":"4"}}],"x":{"a":1,}}`,
	`{"choices":[{"message":{"content":"4"}}],"x":01}`,
	`{"choices":[{"message":{"content":"4"}}],"x":1.}`,
	`{"choices":[{"message":{"content":"4"}}],"x":-}`,
	`{"choices":[{"message":{"content":"4"}}],"x":"\x"}`,
	`{"choices":[{"message":{"content":"4"}}],"x":"\u12"}`,
	`{"choices":[{"message":{"content":"4"}}],"x":tru}`,
	`{"choices":[{"message":{"content":"4"}}],"\u006dodel":"m"}`,
	`{"choices":[{"message":{"content":"4"}}],"modeł":"m"}`,
	`{"choices":[{"message":{"content":"4"}}]}x`,
	`{"choices":[{"message":{"content":"4"}}]`,
	`{"choices":[{"message":{"content":"4"}}],}`,
	`{,"choices":[]}`,
	`{"choices" []}`,
	`{"choices":[{"message":{"content":"4"}}] "model":"m"}`,
	"{\"choices\":[{\"message\":{\"content\":\"a\tb\"}}]}",
	`{"choices":[{"message":{"content":"4"},"finish_reason":"stop","finish_reason":"length"}]}`,
	`{"usage":{"prompt_tokens":1,"prompt_tokens":2},"choices":[]}`,
	`{"system_fingerprint":"fp_1","model":"m\u00e9","choices":[{"finish_reason":"tool_calls"}]}`,
	`null`, `[]`, ``, ` `, `{}`, `{"choices":[]}`,
}

// checkScan fails when scanChat reads body other than json.Unmarshal
// does, or reads a body json.Unmarshal rejects.
func checkScan(t *testing.T, body []byte) (read bool) {
	t.Helper()
	var got chatReply
	if !scanChat(body, &got) {
		return false
	}
	var want chatReply
	if err := json.Unmarshal(body, &want); err != nil {
		t.Errorf("scanChat read %q, which json.Unmarshal rejects: %v", body, err)
		return true
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("scanChat(%q):\n got %#v\nwant %#v", body, got, want)
	}
	return true
}

func TestScanChatAsUnmarshal(t *testing.T) {
	read := 0
	for _, b := range scanBodies {
		if checkScan(t, []byte(b)) {
			read++
		}
	}
	for _, b := range replyBodies(t) {
		if checkScan(t, sanitiseNumbers(b)) {
			read++
		}
	}
	if read < 20 {
		t.Errorf("scanChat read %d bodies, want the usual shapes read", read)
	}
}

// TestScanChatReads: the replies of the usual shape are read by scanChat,
// not left to json.Unmarshal, and the text, finish reason, model and
// token counts come out right.
func TestScanChatReads(t *testing.T) {
	var r chatReply
	if !scanChat([]byte(scanBodies[0]), &r) {
		t.Fatal("scanChat left vLLM's reply to json.Unmarshal")
	}
	if r.Model != "test-model" || len(r.Choices) != 1 || r.Choices[0].Message.Content != "4" ||
		r.Choices[0].FinishReason != "stop" || r.Choices[0].LogProbs != nil ||
		r.Usage.PromptTokens != 120 || r.Usage.CompletionTokens != 1 {
		t.Errorf("scanChat read %+v", r)
	}
	for _, b := range []string{
		`{"model":"m","model":"n","choices":[]}`,
		`{"Model":"m","choices":[]}`,
		`{"choices":[{"message":{"content":"4","MultiContent":null}}]}`,
		`{"choices":[{"message":{"content":"4"}}],"usage":{"prompt_tokens":1.0}}`,
		`{"choices":[{"message":{"content":"4"}}]}x`,
	} {
		if scanChat([]byte(b), &chatReply{}) {
			t.Errorf("scanChat read %s", b)
		}
	}
	body := []byte(scanBodies[0])
	allocs := testing.AllocsPerRun(100, func() {
		if _, err := decodeChat(body); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 1 {
		t.Errorf("decodeChat of vLLM's reply: %v allocations, want at most 1 (the choices)", allocs)
	}
}

// FuzzScanChat compares scanChat with json.Unmarshal on any body.
func FuzzScanChat(f *testing.F) {
	for _, b := range scanBodies {
		f.Add([]byte(b))
	}
	for _, b := range replyBodies(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkScan(t, body)
	})
}
