package modelserver

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
)

// srvDecodeSlow is the way every request was decoded before the single
// pass: a json.Decoder into srvRequest, each content kept raw.
func srvDecodeSlow(body []byte) (srvRequest, error) {
	var r srvRequest
	err := json.NewDecoder(bytes.NewReader(body)).Decode(&r)
	return r, err
}

// TestDecodeRequestAsDecoder checks that the single-pass decoding gives
// every request the parameters, or the error, that the Decoder and the raw
// contents gave it.
func TestDecodeRequestAsDecoder(t *testing.T) {
	bodies := []string{
		srvBenchBody,
		`{"model":"m","messages":[{"role":"user","content":"Answer 1 to 5.\n\u00e9\u00a0x \ud83d\ude00"}],"logprobs":true,"top_logprobs":5,"max_tokens":1}`,
		`{"model":"m","messages":[{"role":"user","content":null},{"role":"user","content":"hi"}]}`,
		`{"model":"m","messages":[{"role":"system","content":[{"type":"text","text":"a"},{"type":"image_url"},{"text":"b"}]},{"role":"user","content":"c"}]}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}]} trailing`,
		`{"model":"m","messages":[{"role":"user","content":"x"}]}{"model":"n"}`,
		`{"model":"m","messages":[{"role":5,"content":"x"}]}`,
		`{"model":"m","messages":[{"role":"user","content":5}]}`,
		`{"model":"m","messages":[{"role":"user","content":{"text":"x"}}]}`,
		`{"model":"m","messages":[null,{"role":"user","content":"x"}]}`,
		`{"model":"m","messages":null}`,
		`{"model":"m","messages":[]}`,
		`{"model":"m"}`,
		`{"model":"m","Messages":[{"Role":"user","CONTENT":"case-insensitive keys"}]}`,
		`{"model":"m","messages":[{"role":"user","content":"a\"b\\c\/d\t"}],"n":3,"seed":7,"temperature":0.5,"stop":["\n"]}`,
		"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"invalid \xff utf-8\"}]}",
		`{"model":"m","prompt":"complete me","logprobs":3}`,
		`{"model":"m","prompt":["a","b"],"n":2}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}],"n":"two"}`,
		`{"model":"m","messages":[{"role":"user","content":"x"}]`,
		`[]`,
		``,
		`null`,
	}
	for _, b := range bodies {
		srvCheckDecode(t, []byte(b))
	}
}

func FuzzDecodeRequest(f *testing.F) {
	f.Add([]byte(srvBenchBody))
	f.Add([]byte(`{"messages":[{"role":"user","content":[{"type":"text","text":"a"}]}],"n":2}`))
	f.Fuzz(srvCheckDecode)
}

// srvCheckDecode fails when the single pass and the Decoder disagree on a
// body: in the error, or in the parameters a chat or completion request
// gets.
func srvCheckDecode(t *testing.T, b []byte) {
	var fast srvRequest
	ferr := srvDecodeRequest(b, &fast)
	slow, serr := srvDecodeSlow(b)
	if (ferr == nil) != (serr == nil) || ferr != nil && ferr.Error() != serr.Error() {
		t.Errorf("%q: decode error %v, the Decoder's %v", b, ferr, serr)
		return
	}
	if ferr != nil {
		return
	}
	for _, chat := range []bool{true, false} {
		fp, fperr := fast.params(chat)
		sp, sperr := slow.params(chat)
		if (fperr == nil) != (sperr == nil) || fperr != nil && fperr.Error() != sperr.Error() {
			t.Errorf("%q chat=%v: params error %v, the Decoder's %v", b, chat, fperr, sperr)
			continue
		}
		if !reflect.DeepEqual(fp, sp) {
			t.Errorf("%q chat=%v: params\n%+v\nthe Decoder's\n%+v", b, chat, fp, sp)
		}
	}
}

func TestSrvWordsAsFields(t *testing.T) {
	for _, s := range []string{
		"", " ", "one", " two  words ", "tab\there\nnewline\r\nand\vvertical\fform",
		"no\u00a0break\u0085next\u2003em\u3000ideographic", "\xff\xfe bad utf-8 \xc3", "é à ü",
		srvBenchBody,
	} {
		if got, want := srvWords(s), len(strings.Fields(s)); got != want {
			t.Errorf("srvWords(%q) = %d, strings.Fields %d", s, got, want)
		}
	}
}

func FuzzSrvWords(f *testing.F) {
	f.Add("a b\u00a0c\td\xffe")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := srvWords(s), len(strings.Fields(s)); got != want {
			t.Errorf("srvWords(%q) = %d, strings.Fields %d", s, got, want)
		}
	})
}

func TestPromptHashIsFNV1a(t *testing.T) {
	for _, s := range []string{"", "a", srvBenchBody, "\xff\u00e9"} {
		h := fnv.New64a()
		h.Write([]byte(s))
		if got, want := promptHash(s), h.Sum64(); got != want {
			t.Errorf("promptHash(%q) = %x, FNV-1a %x", s, got, want)
		}
	}
}

func TestSrvTokensOneCharacter(t *testing.T) {
	for c := range utf8.RuneSelf {
		text := string(rune(c))
		if got, want := srvTokens(text), srvToken.FindAllString(text, -1); !reflect.DeepEqual(got, want) {
			t.Errorf("srvTokens(%q) = %q, the pattern's %q", text, got, want)
		}
	}
}
