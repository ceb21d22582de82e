package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/gatehouse-dev/gatehouse/dataplane/internal/llm"
	"github.com/gatehouse-dev/gatehouse/dataplane/internal/runtime"
)

// statusClientClosed is recorded (never written) when the caller went away.
const statusClientClosed = 499

// apiError is an error with the OpenAI-format answer it deserves. msg is shown to the
// caller; err is only logged.
type apiError struct {
	status int
	typ    string
	code   string
	param  string
	msg    string
	err    error
	// header holds headers to add to the answer.
	header http.Header
}

func (e *apiError) Error() string {
	if e.err != nil {
		return fmt.Sprintf("%s: %v", e.code, e.err)
	}
	return e.code
}

func (e *apiError) Unwrap() error { return e.err }

var (
	errMissingKey = &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", code: "invalid_api_key",
		msg: "Missing API key. Pass it as `Authorization: Bearer <key>` or in the `x-api-key` header."}
	errAmbiguousKey = &apiError{status: http.StatusUnauthorized, typ: "invalid_request_error", code: "invalid_api_key",
		msg: "More than one API key was presented (several `Authorization` or `x-api-key` headers, or both with different keys). Send exactly one."}
	errNotReady = &apiError{status: http.StatusServiceUnavailable, typ: "server_error", code: "not_ready",
		msg: "The gateway has not loaded its configuration yet; retry shortly."}
	errNotFound = &apiError{status: http.StatusNotFound, typ: "invalid_request_error", code: "unknown_url",
		msg: "Unknown request URL."}
	errInternal = &apiError{status: http.StatusInternalServerError, typ: "server_error", code: "internal_error",
		msg: "Internal error. The x-request-id response header identifies the request."}
)

// toAPIError maps any error a handler returns to its answer, in one place.
func toAPIError(err error, model string) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	wrap := func(status int, typ, code, msg string) *apiError {
		return &apiError{status: status, typ: typ, code: code, msg: msg, err: err}
	}
	var invalid *llm.InvalidRequestError
	var tooLarge *http.MaxBytesError
	var region *runtime.RegionError
	var notHere *runtime.ModelNotInRegionError
	var unsupported *llm.ProviderNotSupportedError
	var refusal *llm.Refusal
	switch {
	case errors.As(err, &refusal):
		status := refusal.Status
		if status == 0 {
			status = http.StatusBadRequest
		}
		typ := "invalid_request_error"
		switch {
		case status == http.StatusTooManyRequests:
			typ = "rate_limit_error"
		case status == http.StatusForbidden:
			typ = "permission_error"
		case status >= 500:
			typ = "server_error"
		}
		e := wrap(status, typ, refusal.Code, refusal.Message)
		e.header = refusal.Header
		return e
	case errors.As(err, &invalid):
		e := wrap(http.StatusBadRequest, "invalid_request_error", invalid.Code, invalid.Message)
		e.param = invalid.Param
		return e
	case errors.As(err, &tooLarge):
		return wrap(http.StatusRequestEntityTooLarge, "invalid_request_error", "request_too_large",
			fmt.Sprintf("The request body exceeds the limit of %d bytes.", tooLarge.Limit))
	case errors.Is(err, runtime.ErrInvalidKey):
		return wrap(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "Incorrect API key provided.")
	case errors.Is(err, runtime.ErrKeyExpired):
		return wrap(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key", "The API key has expired.")
	case errors.Is(err, runtime.ErrOrgSuspended):
		return wrap(http.StatusForbidden, "permission_error", "organization_suspended", "The organization is suspended.")
	case errors.Is(err, runtime.ErrTeamSuspended):
		return wrap(http.StatusForbidden, "permission_error", "team_suspended", "The team is suspended.")
	case errors.As(err, &region):
		return wrap(http.StatusForbidden, "permission_error", "region_not_allowed",
			fmt.Sprintf("This key may not be used in region %q.", region.Region))
	case errors.As(err, &notHere):
		msg := fmt.Sprintf("The model %q is not offered in region %q (offered in: %s).",
			notHere.Model, notHere.Region, strings.Join(notHere.OfferedIn, ", "))
		if notHere.Model != notHere.Target {
			msg = fmt.Sprintf("The model %q is not offered in region %q (offered in: %s); it is the team's alias of %q.",
				notHere.Model, notHere.Region, strings.Join(notHere.OfferedIn, ", "), notHere.Target)
		}
		e := wrap(http.StatusNotFound, "invalid_request_error", "model_not_in_region", msg)
		e.param = "model"
		return e
	case errors.As(err, &unsupported):
		e := wrap(http.StatusNotImplemented, "invalid_request_error", "provider_not_supported",
			fmt.Sprintf("The model %q is served by a provider of type %s, which this gateway cannot call yet.",
				model, llm.ProviderTypeName(unsupported.Type)))
		e.param = "model"
		return e
	case errors.Is(err, runtime.ErrModelNotFound):
		e := wrap(http.StatusNotFound, "invalid_request_error", "model_not_found",
			fmt.Sprintf("The model `%s` does not exist or you do not have access to it.", model))
		e.param = "model"
		return e
	case errors.Is(err, runtime.ErrModelNotAllowed):
		e := wrap(http.StatusForbidden, "permission_error", "model_not_allowed",
			fmt.Sprintf("This key may not use the model `%s`.", model))
		e.param = "model"
		return e
	case errors.Is(err, llm.ErrClientGone):
		return wrap(statusClientClosed, "client_error", "client_closed", "")
	case errors.Is(err, llm.ErrUpstreamTimeout):
		return wrap(http.StatusGatewayTimeout, "upstream_error", "upstream_timeout", "The model provider did not answer in time.")
	case errors.Is(err, llm.ErrUpstreamToken):
		return wrap(http.StatusBadGateway, "upstream_error", "upstream_token_failed",
			"The gateway could not get a Microsoft Entra ID token for the model provider.")
	case errors.Is(err, llm.ErrUpstreamAuth):
		return wrap(http.StatusBadGateway, "upstream_error", "upstream_auth_failed", "The model provider refused the gateway's credentials.")
	case errors.Is(err, llm.ErrUpstreamBadResponse):
		return wrap(http.StatusBadGateway, "upstream_error", "upstream_bad_response", "The model provider sent an unreadable response.")
	case errors.Is(err, llm.ErrUpstreamUnreachable):
		return wrap(http.StatusBadGateway, "upstream_error", "upstream_unreachable", "The model provider could not be reached.")
	case errors.Is(err, llm.ErrUpstreamStream):
		return wrap(http.StatusBadGateway, "upstream_error", "upstream_stream_broken", "The model provider broke off the stream.")
	case errors.Is(err, llm.ErrNoDeployment):
		return wrap(http.StatusServiceUnavailable, "upstream_error", "upstream_unavailable",
			"Every deployment of the model is failing; the gateway stopped calling them for a while. Retry shortly.")
	case errors.Is(err, llm.ErrOperationNotSupported):
		e := wrap(http.StatusBadRequest, "invalid_request_error", "operation_not_supported",
			fmt.Sprintf("The model %q does not support this operation.", model))
		e.param = "model"
		return e
	}
	e := *errInternal
	e.err = err
	return &e
}

type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// writeAPIError renders e in the format of the caller's API.
func writeAPIError(w http.ResponseWriter, surface llm.Surface, e *apiError) {
	if surface == llm.SurfaceMessages {
		llm.WriteError(w, surface, e.status, e.typ, e.code, e.param, e.msg)
		return
	}
	d := errorDetail{Message: e.msg, Type: e.typ}
	if e.param != "" {
		d.Param = &e.param
	}
	if e.code != "" {
		d.Code = &e.code
	}
	writeJSON(w, e.status, errorBody{Error: d})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only our own response types are encoded here; they always marshal.
		status, body = http.StatusInternalServerError, []byte(`{"error":{"message":"Internal error.","type":"server_error","param":null,"code":"internal_error"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}
