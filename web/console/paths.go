package console

import (
	"net/url"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/a-h/templ"
)

// orgPath builds an org-scoped console path, escaping each segment. The result always
// starts with "/orgs/", so it is safe to use as a link or form action as is.
func orgPath(org string, segs ...string) templ.SafeURL {
	var b strings.Builder
	b.WriteString("/orgs/")
	b.WriteString(url.PathEscape(org))
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	return templ.SafeURL(b.String())
}

// sectionPath is the landing path of a section of the org; NavNone lands on the teams.
func sectionPath(org string, s NavSection) templ.SafeURL {
	if s == NavNone {
		s = NavTeams
	}
	return orgPath(org, string(s))
}

// teamScopedPath is the current section, narrowed to one team with ?team=.
func teamScopedPath(org string, s NavSection, team string) templ.SafeURL {
	return sectionPath(org, s) + templ.SafeURL("?team="+url.QueryEscape(team))
}

// RoleLabel is the human name of a role: org_admin → "Org admin", viewer → "Viewer".
// Unknown roles get their underscores replaced and the first letter capitalised.
func RoleLabel(role string) string {
	switch role {
	case "org_admin":
		return "Org admin"
	case "team_admin":
		return "Team admin"
	case "platform_admin":
		return "Platform admin"
	case "":
		return ""
	}
	s := strings.ReplaceAll(role, "_", " ")
	r, n := utf8.DecodeRuneInString(s)
	return string(unicode.ToUpper(r)) + s[n:]
}

// unionRoles lists the org roles then the team roles not already listed, for a select whose
// team is chosen in the same form (the handler checks the pair).
func unionRoles(org, team []string) []string {
	out := slices.Clone(org)
	for _, r := range team {
		if !slices.Contains(out, r) {
			out = append(out, r)
		}
	}
	return out
}

func roleOptions(roles []string) []option {
	out := make([]option, 0, len(roles))
	for _, r := range roles {
		out = append(out, option{Value: r, Label: RoleLabel(r)})
	}
	return out
}

// teamOptions lists "(organization)" (value "") then the teams.
func teamOptions(teams []TeamLink) []option {
	out := make([]option, 0, len(teams)+1)
	out = append(out, option{Value: "", Label: "(organization)"})
	for _, t := range teams {
		out = append(out, option{Value: t.Slug, Label: t.Name})
	}
	return out
}

// currentTeam is the team marked current in the switcher, if any.
func currentTeam(teams []TeamLink) (TeamLink, bool) {
	for _, t := range teams {
		if t.Current {
			return t, true
		}
	}
	return TeamLink{}, false
}

// currentOrgName falls back to the slug when the name is missing.
func currentOrgName(o OrgRef) string {
	if o.Name != "" {
		return o.Name
	}
	return o.Slug
}

func tokenStatus(t TokenRow) (tone, text string) {
	switch {
	case t.Revoked:
		return "danger", "Revoked"
	case t.Expired:
		return "warning", "Expired"
	default:
		return "success", "Active"
	}
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}
