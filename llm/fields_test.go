package llm

// The request path before the client wrote its own bodies: go-openai's
// encoding, then the extra fields set on the encoded body. The tests keep
// it as the oracle the wire encoder (wire.go) must match byte for byte.

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
)

// addFields sets top-level fields of a JSON object body (appendFields).
func addFields(body []byte, fields map[string]any) ([]byte, error) {
	f, err := encodeFields(fields)
	if err != nil {
		return nil, err
	}
	return appendFields(body, f)
}

// appendFields sets top-level fields of a JSON object body. The fields
// are ones the request struct never sets, so they are appended before the
// closing brace, sorted; only when the body already has such a key is it
// decoded and re-encoded, which costs a fifth of the client's CPU per call.
func appendFields(body []byte, f *extraFields) ([]byte, error) {
	b := bytes.TrimRight(body, " \t\r\n")
	if len(b) < 2 || b[0] != '{' || b[len(b)-1] != '}' {
		return nil, errors.New("not a JSON object")
	}
	size := len(b)
	for i, k := range f.keys {
		if bytes.Contains(b, []byte(strconv.Quote(k)+":")) {
			return replaceFields(b, f)
		}
		size += len(k) + len(f.vals[i]) + 4
	}
	out := make([]byte, 0, size)
	out = append(out, b[:len(b)-1]...)
	empty := len(bytes.TrimSpace(b[1:len(b)-1])) == 0
	for i, k := range f.keys {
		if !empty {
			out = append(out, ',')
		}
		empty = false
		out = strconv.AppendQuote(out, k)
		out = append(out, ':')
		out = append(out, f.vals[i]...)
	}
	return append(out, '}'), nil
}

func replaceFields(body []byte, f *extraFields) ([]byte, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return nil, err
	}
	for i, k := range f.keys {
		m[k] = f.vals[i]
	}
	return json.Marshal(m)
}
