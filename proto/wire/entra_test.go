package wire

import "testing"

func TestValidEntraIDs(t *testing.T) {
	for _, s := range []string{"11111111-2222-3333-4444-555555555555", "contoso.onmicrosoft.com", "login.contoso.co.uk", "A1B2C3D4-0000-0000-0000-00000000000F"} {
		if err := ValidEntraTenant(s); err != nil {
			t.Errorf("tenant %q: %v", s, err)
		}
	}
	for _, s := range []string{"", "common", "organizations", "contoso", "a/b.com", "../x.com", "x.com/oauth2", "x.com?y=1", "x .com", "-x.com", "11111111-2222-3333-4444-55555555555"} {
		if ValidEntraTenant(s) == nil {
			t.Errorf("tenant %q accepted", s)
		}
	}
	if err := ValidEntraClient("66666666-7777-8888-9999-000000000000"); err != nil {
		t.Error(err)
	}
	for _, s := range []string{"", "contoso.onmicrosoft.com", "66666666777788889999000000000000", "{66666666-7777-8888-9999-000000000000}"} {
		if ValidEntraClient(s) == nil {
			t.Errorf("client %q accepted", s)
		}
	}
}
