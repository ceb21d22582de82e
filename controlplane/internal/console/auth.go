package console

import (
	"errors"
	"net/http"

	"github.com/gatehouse-dev/gatehouse/controlplane/internal/sso"
	"github.com/gatehouse-dev/gatehouse/controlplane/internal/store"
	v "github.com/gatehouse-dev/gatehouse/web/console"
)

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) error {
	if s, err := c.Sessions.Load(r); err == nil && s != nil {
		http.Redirect(w, r, sso.SafeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return nil
	}
	c.render(w, r, http.StatusOK, v.Login(v.LoginView{Next: sso.SafeNext(r.URL.Query().Get("next")), CSRFToken: c.Sessions.PreToken(w, r)}))
	return nil
}

// login routes the email to its IdP and redirects there.
func (c *Console) login(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if !c.Sessions.CheckPreToken(r, r.PostFormValue("csrf_token")) {
		return &pageError{status: http.StatusForbidden, title: "Request refused", message: "The sign-in form was stale or did not come from this console. Reload the page and try again."}
	}
	email, next := r.PostFormValue("email"), sso.SafeNext(r.PostFormValue("next"))
	redirect, state, err := c.SSO.Begin(r.Context(), email, next)
	var ve *store.ValidationError
	var idpErr *sso.IdPError
	switch {
	case errors.As(err, &ve):
		c.render(w, r, http.StatusUnprocessableEntity, v.Login(v.LoginView{Email: email, Next: next, Error: "Enter your work email address.", CSRFToken: c.Sessions.PreToken(w, r)}))
		return nil
	case errors.Is(err, sso.ErrUnknownDomain):
		c.render(w, r, http.StatusUnprocessableEntity, v.Login(v.LoginView{Email: email, Next: next, CSRFToken: c.Sessions.PreToken(w, r),
			Error: "No organization signs in with " + domainOf(email) + " yet. Check the address, or ask your administrator to connect your identity provider."}))
		return nil
	case errors.As(err, &idpErr):
		return &pageError{status: http.StatusBadGateway, title: "Identity provider unavailable", message: idpErr.Message + ". Try again in a moment.", err: err}
	case err != nil:
		return err
	}
	c.Sessions.BindState(w, state)
	http.Redirect(w, r, redirect, http.StatusSeeOther)
	return nil
}

func domainOf(email string) string {
	if e, err := store.NormalizeEmail(email); err == nil {
		return store.EmailDomain(e)
	}
	return "that domain"
}

// callback completes the login the IdP sent back and starts a session.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	res, err := c.SSO.Complete(r.Context(), sso.Callback{
		State: q.Get("state"), Code: q.Get("code"), Error: q.Get("error"), ErrorDescription: q.Get("error_description"),
		BrowserState: c.Sessions.BoundState(w, r),
	})
	var idpErr *sso.IdPError
	switch {
	case errors.Is(err, sso.ErrLoginExpired):
		return &pageError{status: http.StatusBadRequest, title: "Sign-in expired", message: "This sign-in link expired, was already used, or was started in another browser. Start again from the sign-in page.", err: err}
	case errors.Is(err, sso.ErrEmailNotAllowed):
		return &pageError{status: http.StatusForbidden, title: "Email not accepted", message: "Your identity provider signed you in with an email address this organization does not accept (or has not verified).", err: err}
	case errors.Is(err, store.ErrUserDisabled):
		return &pageError{status: http.StatusForbidden, title: "Account disabled", message: "Your Gatehouse account is disabled. Ask your administrator.", err: err}
	case errors.Is(err, sso.ErrUnknownDomain):
		return &pageError{status: http.StatusBadRequest, title: "Single sign-on is not set up", message: "Your organization's identity provider connection is missing or disabled.", err: err}
	case errors.As(err, &idpErr):
		return &pageError{status: http.StatusBadGateway, title: "Sign-in failed at the identity provider", message: idpErr.Message + ".", err: err}
	case err != nil:
		return err
	}
	// The login may have changed roles (group mappings); make this replica see them
	// before the redirect lands.
	c.afterRBACChange(r)
	if err := c.Sessions.Start(r.Context(), w, r, res.User.ID); err != nil {
		return err
	}
	c.Log.Info("signed in", "user_id", res.User.ID, "request_id", requestID(r))
	http.Redirect(w, r, res.Next, http.StatusSeeOther)
	return nil
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request) error {
	if err := c.Sessions.End(w, r); err != nil {
		return err
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
	return nil
}
