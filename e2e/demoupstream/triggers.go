package demoupstream

import (
	"strconv"
	"strings"
	"time"
)

// maxSleep caps [[sleep:...]] so a typo cannot hang a test run.
const maxSleep = 30 * time.Second

// triggers are the fault injections requested by the last user message.
// Malformed or out-of-range triggers are ignored and stay plain text.
type triggers struct {
	status int           // [[status:NNN]], 200-599; 0 when absent
	sleep  time.Duration // [[sleep:DURATION]], capped at maxSleep
	drop   bool          // [[drop]]
}

// parseTriggers finds [[...]] triggers in s. When a trigger repeats, the
// last one wins.
func parseTriggers(s string) triggers {
	var t triggers
	for {
		i := strings.Index(s, "[[")
		if i < 0 {
			return t
		}
		s = s[i+2:]
		j := strings.Index(s, "]]")
		if j < 0 {
			return t
		}
		name, arg, _ := strings.Cut(s[:j], ":")
		s = s[j+2:]
		switch name {
		case "status":
			if code, ok := parseStatus(arg); ok {
				t.status = code
			}
		case "sleep":
			if d, err := time.ParseDuration(arg); err == nil && d > 0 {
				t.sleep = min(d, maxSleep)
			}
		case "drop":
			t.drop = arg == ""
		}
	}
}

// parseStatus accepts exactly three digits in 200-599: 1xx would be sent
// as an informational response followed by an implicit 200.
func parseStatus(s string) (int, bool) {
	if len(s) != 3 {
		return 0, false
	}
	code := 0
	for i := range len(s) {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		code = code*10 + int(c-'0')
	}
	return code, code >= 200 && code <= 599
}

// injectedError is the error for [[status:NNN]], typed the way OpenAI types
// errors of that status.
func injectedError(status int, model string) *apiError {
	e := &apiError{
		status: status,
		typ:    "invalid_request_error",
		msg:    "Injected status " + strconv.Itoa(status) + " from the demo upstream.",
	}
	switch {
	case status == 401:
		e.code = "invalid_api_key"
	case status == 403:
		e.typ = "permission_error"
	case status == 404:
		e.code = "model_not_found"
		e.param = "model"
	case status == 429:
		e.typ = "requests"
		e.code = "rate_limit_exceeded"
		e.msg = "Rate limit reached for " + model + " (injected by the demo upstream). Please try again in 1s."
		e.retryAfter = true
	case status == 503:
		e.typ = "server_error"
		e.msg = "The demo upstream is overloaded (injected). Please try again later."
		e.retryAfter = true
	case status >= 500:
		e.typ = "server_error"
	}
	return e
}
