// Package console holds the console's templ components and the view models they take.
// Components are pure views: they render what the view model says, escape every
// user-supplied string, and put the CSRF token into every form that posts. They do no
// HTTP, no database access and no authorization: the control plane's handlers fill the
// view models (including CanManage-style flags) and own routing and redirects.
//
// Every page works without JavaScript: changes are plain POST forms, navigation is links,
// and menus and confirmations are <details> disclosures.
package console
