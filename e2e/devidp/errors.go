package devidp

import (
	"errors"
	"log/slog"
	"net/http"
	"net/url"
)

// oauthError is an error answered as an OAuth 2.0 JSON error body (RFC 6749
// section 5.2). Code and Description are ours and safe to show; Err is only
// logged.
type oauthError struct {
	Status      int
	Code        string
	Description string
	// Challenge, when set, is sent as WWW-Authenticate.
	Challenge string
	Err       error
}

func (e *oauthError) Error() string {
	msg := e.Code + ": " + e.Description
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *oauthError) Unwrap() error { return e.Err }

// pageError is an error shown on an HTML page. Message is ours and safe to
// show; Err is only logged.
type pageError struct {
	Status  int
	Message string
	Err     error
}

func (e *pageError) Error() string {
	if e.Err != nil {
		return e.Message + ": " + e.Err.Error()
	}
	return e.Message
}

func (e *pageError) Unwrap() error { return e.Err }

// redirectError is an authorization error reported to the client by
// redirecting to its (already validated) redirect URI, RFC 6749 section 4.1.2.1.
type redirectError struct {
	RedirectURI *url.URL
	State       string
	Code        string
	Description string
}

func (e *redirectError) Error() string { return e.Code + ": " + e.Description }

// oauthHandler adapts a JSON endpoint that returns errors.
func (p *Provider) oauthHandler(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var oe *oauthError
		if !errors.As(err, &oe) {
			oe = &oauthError{Status: http.StatusInternalServerError, Code: "server_error", Description: "internal error", Err: err}
		}
		p.logger.Info("dev idp request failed",
			slog.String("path", r.URL.Path), slog.String("error_code", oe.Code), slog.String("error", err.Error()))
		if oe.Challenge != "" {
			w.Header().Set("WWW-Authenticate", oe.Challenge)
		}
		writeJSON(w, oe.Status, map[string]string{"error": oe.Code, "error_description": oe.Description})
	})
}

// pageHandler adapts a browser-facing endpoint that returns errors: redirect
// errors go back to the client, everything else is an HTML error page.
func (p *Provider) pageHandler(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var re *redirectError
		if errors.As(err, &re) {
			p.logger.Info("dev idp authorization refused",
				slog.String("error_code", re.Code), slog.String("error", err.Error()))
			q := url.Values{"error": {re.Code}, "error_description": {re.Description}}
			if re.State != "" {
				q.Set("state", re.State)
			}
			http.Redirect(w, r, withQuery(re.RedirectURI, q), http.StatusFound)
			return
		}
		var pe *pageError
		if !errors.As(err, &pe) {
			pe = &pageError{Status: http.StatusInternalServerError, Message: "Internal error.", Err: err}
		}
		p.logger.Info("dev idp request failed", slog.String("path", r.URL.Path), slog.String("error", err.Error()))
		p.renderPage(w, pe.Status, "error", pe.Message)
	})
}

// withQuery returns u with q added to its query.
func withQuery(u *url.URL, q url.Values) string {
	out := *u
	merged := out.Query()
	for k, vs := range q {
		merged[k] = vs
	}
	out.RawQuery = merged.Encode()
	return out.String()
}
