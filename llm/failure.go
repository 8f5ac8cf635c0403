package llm

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"unicode"
	"unicode/utf8"
)

// ErrPermanent is wrapped by the error of a request that no retry can
// mend: the endpoint refused it for a reason that will not change during a
// run (an exhausted quota, a missing model, a rejected key, a parameter the
// server does not take, an address where nothing listens).
var ErrPermanent = errors.New("model endpoint refused the request")

// maxMessage bounds the server's message kept in an error, in bytes: long
// enough for every explanation seen from real servers, short enough that a
// server answering with an HTML page or a stack trace cannot flood a log.
const maxMessage = 300

// RequestError is a request the endpoint refused or could not serve, with
// the server's own explanation.
type RequestError struct {
	Method string
	URL    string // the request's URL without credentials
	// Status is the HTTP status of the reply, or the code of an error
	// object a server sent with status 200; 0 when no reply came (a
	// refused connection, a timeout, a DNS or TLS failure).
	Status int
	// Message is the server's message (bounded, on one line) or, without a
	// reply, the cause of the failure such as "connection refused".
	Message string
	// Permanent marks a failure no retry can mend.
	Permanent bool
	// Overload marks a failure that says the endpoint has more work than
	// it can take (a timeout, 429, 503, 504): the client lowers its
	// concurrency.
	Overload bool
	err      error
}

func (e *RequestError) Error() string {
	var b strings.Builder
	b.WriteString(e.Method)
	b.WriteByte(' ')
	b.WriteString(e.URL)
	b.WriteString(": ")
	if e.Status != 0 {
		b.WriteString("status ")
		b.WriteString(strconv.Itoa(e.Status))
		if e.Message != "" {
			b.WriteString(": ")
		}
	}
	b.WriteString(e.Message)
	return b.String()
}

// Unwrap gives ErrPermanent for a permanent failure and the transport's
// error, when there is one.
func (e *RequestError) Unwrap() []error {
	var out []error
	if e.Permanent {
		out = append(out, ErrPermanent)
	}
	if e.err != nil {
		out = append(out, e.err)
	}
	return out
}

// PermanentFailure reports whether err is a model request that no retry
// can mend, for callers that must not try again (a task queue that would
// otherwise redeliver the work).
func (e *RequestError) PermanentFailure() bool { return e.Permanent }

// cleanURL is u without user information, query or fragment: a token in
// any of them never reaches an error message.
func cleanURL(u *url.URL) string {
	if u == nil {
		return ""
	}
	v := *u
	v.User = nil
	v.RawQuery = ""
	v.ForceQuery = false
	v.Fragment = ""
	return v.String()
}

// statusError makes the error of a reply with a failure status (or of a
// 200 whose body is an error object, with status the code it names). The
// failure is permanent when the status or the server's message says that
// no retry can mend it.
func statusError(req *http.Request, status int, header http.Header, body []byte) *RequestError {
	msg, kind := serverMessage(header.Get("Content-Type"), body)
	if msg == "" {
		msg = http.StatusText(status)
	}
	e := &RequestError{Method: req.Method, URL: cleanURL(req.URL), Status: status, Message: msg}
	low := strings.ToLower(msg + " " + kind)
	switch {
	case status == http.StatusTooManyRequests:
		e.Permanent = quotaExhausted(low)
		e.Overload = !e.Permanent
	case status == http.StatusRequestTimeout:
		e.Overload = true
	case status == http.StatusServiceUnavailable, status == http.StatusGatewayTimeout, status == 529:
		e.Overload = true
		e.Permanent = quotaExhausted(low)
	case status == http.StatusNotImplemented, status == http.StatusHTTPVersionNotSupported:
		// The server does not do what was asked (another kind of server
		// at the address): no retry mends it.
		e.Permanent = true
	case status >= 500:
		e.Permanent = permanentMessage(low)
	case status >= 400:
		e.Permanent = true
	}
	return e
}

// quotaExhausted reports whether a lower-case message says the account has
// run out of quota or credit (OpenAI's insufficient_quota, billing
// messages), as opposed to a rate limit that lifts within a minute.
func quotaExhausted(low string) bool {
	if !strings.Contains(low, "quota") && !strings.Contains(low, "billing") &&
		!strings.Contains(low, "credit") && !strings.Contains(low, "payment") {
		return false
	}
	for _, w := range []string{"per min", "per sec", "per hour", "rate limit", "rate_limit", "requests per", "tokens per", "rpm", "tpm"} {
		if strings.Contains(low, w) {
			return false
		}
	}
	return true
}

// permanentMessage reports whether a 5xx reply's lower-case message names a
// failure that a retry meets again: the model is missing or does not fit in
// the server's memory, or the account cannot pay.
func permanentMessage(low string) bool {
	for _, w := range []string{"not found", "does not exist", "no such model", "unknown model",
		"requires more system memory", "insufficient_quota", "billing"} {
		if strings.Contains(low, w) {
			return true
		}
	}
	return false
}

// serverMessage is the explanation in an error reply: the message of
// {"error":{"message":...}}, {"error":"..."}, {"object":"error",
// "message":...}, {"message":...} or {"detail":...}, else the text of a
// plain or HTML body; on one line and at most maxMessage bytes. kind is the
// error's type and code when the body names them (insufficient_quota).
func serverMessage(contentType string, body []byte) (msg, kind string) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return "", ""
	}
	if body[0] == '{' {
		var m map[string]json.RawMessage
		if json.Unmarshal(body, &m) == nil {
			if msg, kind, ok := messageOf(m); ok {
				return oneLine(msg), kind
			}
		}
	}
	text := string(body)
	if strings.Contains(contentType, "html") || strings.HasPrefix(text, "<") {
		text = htmlText(text)
	}
	return oneLine(text), ""
}

// messageOf finds the message in a decoded error object.
func messageOf(m map[string]json.RawMessage) (msg, kind string, ok bool) {
	str := func(raw json.RawMessage) string {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
		return ""
	}
	// kind collects the type and code: "insufficient_quota" may be in
	// either, and a numeric code is kept as text.
	kinds := func(m map[string]json.RawMessage) string {
		var parts []string
		for _, k := range []string{"type", "code", "status"} {
			if s := str(m[k]); s != "" {
				parts = append(parts, s)
			}
		}
		return strings.Join(parts, " ")
	}
	if raw, has := m["error"]; has {
		if s := str(raw); s != "" {
			return s, kinds(m), true
		}
		var inner map[string]json.RawMessage
		if json.Unmarshal(raw, &inner) == nil && inner != nil {
			if msg, _, ok := messageOf(inner); ok {
				return msg, kinds(inner), true
			}
		}
	}
	for _, k := range []string{"message", "detail", "msg", "error_message"} {
		raw, has := m[k]
		if !has {
			continue
		}
		if s := str(raw); s != "" {
			return s, kinds(m), true
		}
		// FastAPI's validation errors: {"detail": [{"msg": ...}, ...]}.
		var list []map[string]json.RawMessage
		if json.Unmarshal(raw, &list) == nil && len(list) > 0 {
			if msg, _, ok := messageOf(list[0]); ok {
				return msg, kinds(m), true
			}
		}
	}
	return "", "", false
}

var (
	htmlTitle = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	htmlTag   = regexp.MustCompile(`(?s)<[^>]*>`)
)

// htmlText is the title of an HTML error page (a proxy's "502 Bad
// Gateway"), or its text without tags.
func htmlText(s string) string {
	if m := htmlTitle.FindStringSubmatch(s); m != nil && strings.TrimSpace(m[1]) != "" {
		return m[1]
	}
	return htmlTag.ReplaceAllString(s, " ")
}

// oneLine collapses white space and control characters into single
// spaces, drops invalid UTF-8 and cuts the text at maxMessage bytes on a
// rune boundary, marking the cut.
func oneLine(s string) string {
	var b strings.Builder
	space := false
	for _, r := range s {
		if r == utf8.RuneError || unicode.IsSpace(r) || unicode.IsControl(r) {
			space = b.Len() > 0
			continue
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		if b.Len()+utf8.RuneLen(r) > maxMessage {
			return strings.TrimSpace(b.String()) + "…"
		}
		b.WriteRune(r)
	}
	return b.String()
}

// transportError makes the error of an exchange that got no reply. A
// refused connection, an unknown host and a failed TLS handshake are
// permanent until the endpoint has answered once (a server that answered
// and then refuses is restarting); an attempt's timeout is overload.
func transportError(ctx context.Context, req *http.Request, err error, answered bool, timeout string) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	e := &RequestError{Method: req.Method, URL: cleanURL(req.URL), err: err}
	var ue *url.Error
	inner := err
	if errors.As(err, &ue) {
		inner = ue.Err // its text repeats the method and URL
	}
	var (
		dnsErr  *net.DNSError
		certErr *tls.CertificateVerificationError
		unknown x509.UnknownAuthorityError
		host    x509.HostnameError
		invalid x509.CertificateInvalidError
		record  tls.RecordHeaderError
		alert   tls.AlertError
	)
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		e.Message = "attempt timed out after " + timeout
		e.Overload = true
		e.err = nil
	case errors.Is(err, syscall.ECONNREFUSED):
		e.Message = "connection refused (" + inner.Error() + ")"
		e.Permanent = !answered
	case errors.As(err, &dnsErr):
		e.Message = "host not found (" + inner.Error() + ")"
		e.Permanent = !answered && !dnsErr.IsTemporary && !dnsErr.IsTimeout
	case errors.As(err, &certErr), errors.As(err, &unknown), errors.As(err, &host),
		errors.As(err, &invalid), errors.As(err, &record), errors.As(err, &alert):
		e.Message = "TLS failed (" + inner.Error() + ")"
		e.Permanent = !answered
	default:
		e.Message = inner.Error()
	}
	e.Message = oneLine(e.Message)
	return e
}

// errorInBody reports whether a 200 reply's body is an error object rather
// than a completion, as some servers send ({"object":"error",...},
// {"error":{...}} without choices), and makes its error. The check is a
// byte search first, so that ordinary replies cost nothing.
func errorInBody(req *http.Request, header http.Header, body []byte) (*RequestError, bool) {
	if !bytes.Contains(body, []byte(`"error"`)) {
		return nil, false
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil {
		return nil, false
	}
	if _, ok := m["choices"]; ok {
		return nil, false
	}
	var object string
	json.Unmarshal(m["object"], &object)
	raw, hasErr := m["error"]
	if object != "error" && (!hasErr || string(raw) == "null") {
		return nil, false
	}
	status := http.StatusInternalServerError
	code := m["code"]
	if hasErr {
		var inner map[string]json.RawMessage
		if json.Unmarshal(raw, &inner) == nil {
			code = inner["code"]
		}
	}
	if c, err := strconv.Atoi(strings.Trim(string(code), `"`)); err == nil && c >= 400 && c < 600 {
		status = c
	}
	e := statusError(req, status, header, body)
	if status == http.StatusInternalServerError && !e.Permanent {
		// Without a code, a message such as "does not exist" still says
		// the request cannot succeed; others may be transient.
		e.Permanent = permanentMessage(strings.ToLower(e.Message))
	}
	e.Message += " (an error object sent with status 200)"
	return e, true
}
