package console

import (
	"net/url"
	"slices"
	"strconv"
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

// ProviderTypeLabel is the human name of a provider type; unknown types are shown as is.
func ProviderTypeLabel(t string) string {
	switch t {
	case ProviderOpenAICompatible:
		return "OpenAI-compatible"
	case ProviderAnthropic:
		return "Anthropic"
	case ProviderAzureOpenAI:
		return "Azure OpenAI"
	case ProviderGemini:
		return "Gemini"
	}
	return t
}

// TransportLabel is the human name of an MCP transport; unknown ones are shown as is.
func TransportLabel(t string) string {
	switch t {
	case TransportStreamableHTTP:
		return "Streamable HTTP"
	case TransportSSE:
		return "SSE"
	}
	return t
}

func providerTypeOptions(current string) []option {
	var out []option
	for _, t := range []string{ProviderOpenAICompatible, ProviderAnthropic, ProviderAzureOpenAI, ProviderGemini} {
		out = append(out, option{Value: t, Label: ProviderTypeLabel(t)})
	}
	return withCurrentLabel(out, current, ProviderTypeLabel)
}

func transportOptions(current string) []option {
	out := []option{
		{Value: TransportStreamableHTTP, Label: TransportLabel(TransportStreamableHTTP)},
		{Value: TransportSSE, Label: TransportLabel(TransportSSE)},
	}
	return withCurrentLabel(out, current, TransportLabel)
}

// withCurrentLabel is withCurrent with a label function other than RoleLabel.
func withCurrentLabel(opts []option, current string, label func(string) string) []option {
	if current == "" || slices.ContainsFunc(opts, func(o option) bool { return o.Value == current }) {
		return opts
	}
	return append([]option{{Value: current, Label: label(current)}}, opts...)
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// shareMode is the checked sharing radio: anything but "teams" is "all".
func shareMode(f SharingForm) string {
	if f.Mode == ShareTeams {
		return ShareTeams
	}
	return ShareAll
}

func regionLabel(r RegionOption) string {
	if r.Label != "" && r.Label != r.Name {
		return r.Label + " (" + r.Name + ")"
	}
	return r.Name
}

func fleetRegionLabel(r FleetRegion) string {
	return regionLabel(RegionOption{Name: r.Name, Label: r.Label})
}

// idSafe turns a value into something usable inside an id attribute (no spaces).
func idSafe(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, s)
}

func keyStatus(k KeyRow) (tone, text string) {
	return tokenStatus(TokenRow{Revoked: k.Revoked, Expired: k.Expired})
}

func gatewayStatus(s GatewayStatus) (tone, text string) {
	switch s {
	case GatewayLive:
		return "success", "Live"
	case GatewayStale:
		return "warning", "Stale"
	case GatewayGone:
		return "danger", "Gone"
	}
	return "neutral", orDash(string(s))
}

// liveGateways counts the region's gateways with status Live.
func liveGateways(r FleetRegion) int {
	n := 0
	for _, g := range r.Gateways {
		if g.Status == GatewayLive {
			n++
		}
	}
	return n
}

// syncState says whether a gateway serves the org's latest published config.
func syncState(g GatewayRow, latest string) (tone, text string) {
	switch {
	case g.AppliedVersion == "" && latest == "":
		return "neutral", "No config"
	case g.AppliedVersion == "":
		return "warning", "Not applied"
	case g.Lag <= 0:
		return "success", "In sync"
	case g.Lag == 1:
		return "warning", "1 version behind"
	}
	return "warning", strconv.Itoa(g.Lag) + " versions behind"
}

// fleetPath is the fleet page, with ?auto=1 when it reloads itself.
func fleetPath(org string, auto bool) templ.SafeURL {
	p := orgPath(org, "fleet")
	if auto {
		p += "?auto=1"
	}
	return p
}

// exampleModel is the model a new key's curl example calls.
func exampleModel(v TeamView) string {
	switch {
	case v.NewKeyModel != "":
		return v.NewKeyModel
	case len(v.Models) > 0:
		return v.Models[0].Name
	case len(v.Aliases) > 0:
		return v.Aliases[0].Alias
	}
	return "MODEL"
}

// curlExample is a chat completion through the gateway with a new key. Model names and
// generated secrets hold no quotes; the result is rendered as escaped text.
func curlExample(gatewayURL, secret, model string) string {
	base := strings.TrimRight(orDefault(gatewayURL, "$GATEWAY_URL"), "/")
	return "curl " + base + "/v1/chat/completions \\\n" +
		"  -H \"Authorization: Bearer " + secret + "\" \\\n" +
		"  -H \"Content-Type: application/json\" \\\n" +
		"  -d '{\"model\": \"" + model + "\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello\"}]}'"
}

// keyModelOptions are the key form's model checkboxes: the team's models, then its
// aliases not named like a model.
func keyModelOptions(v TeamView) []string {
	var out []string
	for _, m := range v.Models {
		if !slices.Contains(out, m.Name) {
			out = append(out, m.Name)
		}
	}
	for _, a := range v.Aliases {
		if !slices.Contains(out, a.Alias) {
			out = append(out, a.Alias)
		}
	}
	return out
}

// teamRegionOptions are the regions a key may be narrowed to: the team's regions, or every
// org region when the team is not restricted.
func teamRegionOptions(v TeamView) []RegionOption {
	if len(v.RegionsForm.Regions) == 0 {
		return v.OrgRegions
	}
	var out []RegionOption
	for _, r := range v.OrgRegions {
		if slices.Contains(v.RegionsForm.Regions, r.Name) {
			out = append(out, r)
		}
	}
	return out
}

func modelOptions(ms []ModelRow) []option {
	out := make([]option, 0, len(ms))
	for _, m := range ms {
		out = append(out, option{Value: m.ID, Label: m.Name})
	}
	return out
}

func providerOptions(ps []ProviderOption) []option {
	out := make([]option, 0, len(ps))
	for _, p := range ps {
		out = append(out, option{Value: p.ID, Label: p.Name})
	}
	return out
}
