package wire

import (
	"errors"
	"regexp"
)

var (
	guidRE = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$`)
	// A verified domain of a directory: DNS labels, at least two.
	tenantDomainRE = regexp.MustCompile(`^(?i:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.(?i:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?))+$`)
)

// ValidEntraTenant checks a Microsoft Entra ID directory (tenant) id: a GUID or a
// verified domain such as contoso.onmicrosoft.com. It becomes a path segment of the
// token endpoint, so nothing else passes (no slashes, no "common" or "organizations",
// which client credentials cannot use).
func ValidEntraTenant(s string) error {
	if guidRE.MatchString(s) || (len(s) <= 253 && tenantDomainRE.MatchString(s)) {
		return nil
	}
	return errors.New("must be a directory (tenant) id: a GUID or a domain such as contoso.onmicrosoft.com")
}

// ValidEntraClient checks a Microsoft Entra ID application (client) id: a GUID.
func ValidEntraClient(s string) error {
	if guidRE.MatchString(s) {
		return nil
	}
	return errors.New("must be an application (client) id, a GUID")
}
