package llm

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
)

// operatorIDs matches what a provider's error message may say of the operator's own
// account rather than of the caller's request: OpenAI organization and project ids
// (a 429 names the organization whose limit was hit), and API keys in full or masked
// (sk-…, sk-ant-…, sk-proj-…, Google's AIza…).
var operatorIDs = regexp.MustCompile(`\borg-[A-Za-z0-9]{12,}|\bproj_[A-Za-z0-9]{12,}|\bsk-[A-Za-z0-9_*\-]{6,}|\bAIza[0-9A-Za-z_\-]{20,}`)

// operatorUUIDs matches how Anthropic's errors name the organization: "your
// organization (<uuid>)" and "(org: <uuid>, model: …)".
var operatorUUIDs = regexp.MustCompile(`(?i)(organization \(|org: )[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)

// scrubOperator replaces the operator's account ids and keys in a provider's error
// body with "[redacted]". The replacement is plain ASCII, so JSON stays valid.
func scrubOperator(body []byte) []byte {
	body = operatorIDs.ReplaceAllLiteral(body, []byte("[redacted]"))
	return operatorUUIDs.ReplaceAll(body, []byte("${1}[redacted]"))
}

// openAIErrorType is the OpenAI error type of an HTTP status.
func openAIErrorType(status int) string {
	switch {
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status >= 500:
		return "server_error"
	}
	return "invalid_request_error"
}

// AnthropicErrorType is the Anthropic error type of an HTTP status.
func AnthropicErrorType(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "invalid_request_error"
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case 529, http.StatusServiceUnavailable:
		return "overloaded_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// ErrorBody renders an error in the format of surface: OpenAI's
// {"error":{"message","type","param","code"}} for the OpenAI surfaces, Anthropic's
// {"type":"error","error":{"type","message"}} for Messages (whose type follows the
// status, as Anthropic's does).
func ErrorBody(s Surface, status int, typ, code, param, msg string) []byte {
	var v any
	if s == SurfaceMessages {
		v = anthropicErrorOf(AnthropicErrorType(status), msg)
	} else {
		e := map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}
		if param != "" {
			e["param"] = param
		}
		if code != "" {
			e["code"] = code
		}
		v = map[string]any{"error": e}
	}
	b, _ := json.Marshal(v)
	return append(b, '\n')
}

// WriteError writes an error answer in the format of surface.
func WriteError(w http.ResponseWriter, s Surface, status int, typ, code, param, msg string) {
	body := ErrorBody(s, status, typ, code, param, msg)
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
}
