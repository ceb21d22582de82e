package adminapi

import (
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	"github.com/go-chi/chi/v5/middleware"
)

// HTTPError is an error with the status and safe message a caller sees. Err, if set,
// is logged, never shown.
type HTTPError struct {
	Status int
	Code   string
	Msg    string
	Fields map[string]string
	Err    error
}

func (e *HTTPError) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *HTTPError) Unwrap() error { return e.Err }

func badRequest(msg string, err error) error {
	return &HTTPError{Status: http.StatusBadRequest, Code: "bad_request", Msg: msg, Err: err}
}

// errorBody is the JSON shape of every admin API error.
type errorBody struct {
	Error struct {
		Code      string            `json:"code"`
		Message   string            `json:"message"`
		Fields    map[string]string `json:"fields,omitempty"`
		RequestID string            `json:"request_id,omitempty"`
	} `json:"error"`
}

// handlerFunc is an HTTP handler that returns its error to one adapter.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// handle adapts h: domain errors become statuses, anything unexpected is logged with
// the request id and shown as a generic 500.
func (a *API) handle(h handlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		writeError(w, r, a.log, err)
	}
}

func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var he *HTTPError
	var ve *store.ValidationError
	switch {
	case errors.As(err, &he):
	case errors.As(err, &ve):
		he = &HTTPError{Status: http.StatusUnprocessableEntity, Code: "invalid", Msg: "the request has invalid fields", Fields: ve.Fields}
		if ve.Conflict {
			he.Status, he.Code, he.Msg = http.StatusConflict, "conflict", "the request conflicts with an existing resource"
		}
	case errors.Is(err, store.ErrNotFound):
		he = &HTTPError{Status: http.StatusNotFound, Code: "not_found", Msg: "not found"}
	default:
		he = &HTTPError{Status: http.StatusInternalServerError, Code: "internal", Msg: "internal error", Err: err}
	}
	reqID := middleware.GetReqID(r.Context())
	if he.Status >= 500 {
		log.Error("admin api error", "request_id", reqID, "method", r.Method, "path", r.URL.Path, "error", err)
	} else if he.Err != nil {
		log.Info("admin api refused", "request_id", reqID, "status", he.Status, "error", he.Err)
	}
	var body errorBody
	body.Error.Code, body.Error.Message, body.Error.Fields, body.Error.RequestID = he.Code, he.Msg, he.Fields, reqID
	writeJSON(w, he.Status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// maxBodyBytes bounds admin API request bodies.
const maxBodyBytes = 1 << 20

// decode reads a JSON body strictly: unknown fields are refused so typos are not
// silently ignored.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBodyBytes))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return &HTTPError{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Msg: "request body too large"}
		}
		return badRequest("request body is not valid JSON for this operation: "+jsonProblem(err), err)
	}
	if dec.More() {
		return badRequest("request body has trailing data", nil)
	}
	return nil
}

// jsonProblem describes a decoding error without echoing input.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return "syntax error"
	case errors.As(err, &te):
		return "field " + te.Field + " has the wrong type"
	case errors.Is(err, errors.ErrUnsupported):
		return "unsupported"
	}
	msg := err.Error()
	if len(msg) > 18 && msg[:18] == "json: unknown fiel" {
		return msg[6:]
	}
	return "malformed"
}
