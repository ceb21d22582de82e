package guardrail

import (
	"strings"
	"testing"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// Test secrets are assembled from pieces so secret scanners do not flag this file.
var (
	openAIKey    = "sk-" + "proj-" + "Xq3vT9bLm2Nc8RfKp4Ws7Yd1Gh6Jz0AaBbCcDdEe5uVw"
	openAILegacy = "sk-" + "Ab12Cd34Ef56Gh78Ij90Kl12Mn34Op56Qr78St90Uv12Wx"
	anthropicKey = "sk-" + "ant-api03-" + "Zx9Yw8Vu7Ts6Rq5Po4Nm3Lk2Ji1Hg0Fe_dCbA-9Ab8Cd7Ef6Gh5Ij4Kl3Mn2Op1Qr0StUvWxYzAA"
	awsKey       = "AKIA" + "IOSFODNN7EXAMPLE"
	awsTempKey   = "ASIA" + "Y3FJ2K7QW8ZX4M1N"
	githubToken  = "ghp_" + "R4nd0mT0k3nV4lu3F0rT3st1ngPurp0s3sX1"
	githubPAT    = "github_pat_" + "11ABCDEFG0aBcDeFgHiJkL_mNoPqRsTuVwXyZ0123456789aBcDeFgHiJkLmNoPqRsTuVwXyZ01234"
	slackToken   = "xoxb-" + "123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"
	googleKey    = "AIza" + "SyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"
	stripeKey    = "sk_" + "live_" + "4eC39HqLyjWDarjtT1zdp7dc"
	gatehouseKey = "gate_" + "k3x9q2m8w1z7" + "_" + "Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef"
	adminToken   = "gadm_" + "a1b2c3d4e5f6" + "_" + "ZyXwVuTsRqPoNmLkJiHgFeDcBa987654"

	pemRSA       = "-----BEGIN " + "RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun\nVTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK\n-----END RSA PRIVATE KEY-----"
	pemOpenSSH   = "-----BEGIN " + "OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\nQyNTUxOQAAACDgsR0Ir6MbWvnNRm5hzNEX6gzxKi5HSr+kk0kp0HvVgAAAAJgJ0HaXCdB2\n-----END OPENSSH PRIVATE KEY-----"
	pemEncrypted = "-----BEGIN " + "RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,3F17F5316E2BAC89E2B4B1B0D2A6E3C4\n\nhG7f8wq1mLp0Zr3sT5uV7wX9yA1bC3dE5fG7hI9jK1lM3nO5pQ7rS9tU1vW3xY5z\n-----END RSA PRIVATE KEY-----"
	pemPKCS8     = "-----BEGIN " + "PRIVATE KEY-----\\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQC7VJTUt9Us8cKj\\n-----END PRIVATE KEY-----\\n"
)

// checkRedacts asserts that p turns in into want, whole and streamed at every 2-way
// split (and, for short inputs, every 3-way split).
func checkRedacts(t *testing.T, p *Policy, in, want string) {
	t.Helper()
	if got, _ := whole(p, in); got != want {
		t.Fatalf("whole:\n in   %q\n got  %q\n want %q", in, got, want)
	}
	for i := 0; i <= len(in); i++ {
		if got, _, _ := streamed(p, in[:i], in[i:]); got != want {
			t.Fatalf("split at %d (%q|%q):\n got  %q\n want %q", i, in[:i], in[i:], got, want)
		}
	}
	if len(in) <= 80 {
		for i := 0; i <= len(in); i++ {
			for j := i; j <= len(in); j++ {
				if got, _, _ := streamed(p, in[:i], in[i:j], in[j:]); got != want {
					t.Fatalf("split at %d,%d: got %q want %q", i, j, got, want)
				}
			}
		}
	}
}

type detectorCase struct {
	name, in, want string // want "" means unchanged
}

func runDetectorCases(t *testing.T, d gatehousev1.GuardrailDetector, cases []detectorCase) {
	t.Helper()
	p := mustCompile(t, newRule("r", d, modeRedact, dirBoth))
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := tc.want
			if want == "" {
				want = tc.in
			}
			checkRedacts(t, p, tc.in, want)
		})
	}
}

func TestEmail(t *testing.T) {
	t.Parallel()
	runDetectorCases(t, detEmail, []detectorCase{
		{"plain", "write to john.doe@example.com today", "write to [REDACTED:email] today"},
		{"sentence end", "Mail jane+tag@mail.example.co.uk.", "Mail [REDACTED:email]."},
		{"whole text", "a_b%c@sub-domain.example.org", "[REDACTED:email]"},
		{"two", "a@b.io,c@d.io", "[REDACTED:email],[REDACTED:email]"},
		{"in angle brackets", "From: John <john@example.com>", "From: John <[REDACTED:email]>"},
		{"mailto", "mailto:john@example.com", "mailto:[REDACTED:email]"},
		{"query string", "https://example.com/invite?to=john@example.com&x=1", "https://example.com/invite?to=[REDACTED:email]&x=1"},
		{"url userinfo hides password", "https://bob:hunter2@db.example.com/x", "https://bob:[REDACTED:email]/x"},
		{"uppercase", "JOHN@EXAMPLE.COM", "[REDACTED:email]"},
		{"handle", "ping @john on slack", ""},
		{"scoped package url", "https://www.npmjs.com/package/@types/node", ""},
		{"medium profile", "https://medium.com/@jane/my-post", ""},
		{"single label", "root@localhost", ""},
		{"no tld", "foo@bar", ""},
		{"numeric tld", "a@b.c0m", ""},
		{"one letter tld", "john@example.c", ""},
		{"hyphen label edge", "john@-example.com", ""},
		{"local part too long", strings.Repeat("a", 65) + "@example.com", ""},
		{"at sign alone", "a @ b.com and @@", ""},
	})
}

func TestPhone(t *testing.T) {
	t.Parallel()
	runDetectorCases(t, detPhone, []detectorCase{
		{"us with country code", "call +1 (415) 555-2671 now", "call [REDACTED:phone] now"},
		{"us dashes", "415-555-2671", "[REDACTED:phone]"},
		{"us parens", "(415) 555-2671.", "[REDACTED:phone]."},
		{"us dots", "tel 415.555.2671", "tel [REDACTED:phone]"},
		{"e164", "tel:+14155552671", "tel:[REDACTED:phone]"},
		{"uk", "Office: +44 20 7946 0958", "Office: [REDACTED:phone]"},
		{"germany", "+49 30 12345678", "[REDACTED:phone]"},
		{"france", "01 23 45 67 89", "[REDACTED:phone]"},
		{"ten digits", "4155552671", "[REDACTED:phone]"},
		{"followed by paren note", "415-555-2671 (home)", "[REDACTED:phone] (home)"},
		{"iso date", "on 2024-01-15", ""},
		{"date and time", "2024-01-15 10:30", ""},
		{"european date", "15.01.2024 09", ""},
		{"ipv4", "host 192.168.100.200", ""},
		{"seven digits", "555-1234", ""},
		{"version", "v1.22.3", ""},
		{"money", "$4155552671", ""},
		{"thousands", "1,234,567,890", ""},
		{"too long", "4155552671415555", ""},
		{"glued to word", "id4155552671", ""},
		{"order number", "order 12345678", ""},
		{"plus too short", "+1 234", ""},
	})
}

func TestCard(t *testing.T) {
	t.Parallel()
	runDetectorCases(t, detCard, []detectorCase{
		{"visa spaced", "card 4111 1111 1111 1111 exp 12/29", "card [REDACTED:card] exp 12/29"},
		{"visa dashes", "4111-1111-1111-1111", "[REDACTED:card]"},
		{"visa plain", "4012888888881881.", "[REDACTED:card]."},
		{"mastercard", "5555 5555 5555 4444", "[REDACTED:card]"},
		{"amex", "Amex: 3782 822463 10005", "Amex: [REDACTED:card]"},
		{"discover", "6011111111111117", "[REDACTED:card]"},
		{"luhn fails", "4111 1111 1111 1112", ""},
		{"bad issuer", "1234 5678 9012 3452", ""},
		{"too short", "4111 1111 11", ""},
		{"too long", "4111 1111 1111 1111 1111 1", ""},
		{"in a word", "x4111111111111111", ""},
		{"decimal", "0.4111111111111111", ""},
		{"double space", "4111  1111 1111 1111", ""},
	})
}

func TestIBAN(t *testing.T) {
	t.Parallel()
	runDetectorCases(t, detIBAN, []detectorCase{
		{"germany grouped", "IBAN: DE89 3704 0044 0532 0130 00, BIC", "IBAN: [REDACTED:iban], BIC"},
		{"germany plain", "DE89370400440532013000", "[REDACTED:iban]"},
		{"uk", "GB82WEST12345698765432", "[REDACTED:iban]"},
		{"france with letter", "FR14 2004 1010 0505 0001 3M02 606", "[REDACTED:iban]"},
		{"netherlands", "NL91ABNA0417164300.", "[REDACTED:iban]."},
		{"wrong check digits", "DE88 3704 0044 0532 0130 00", ""},
		{"wrong length", "DE89 3704 0044 0532 0130 0", ""},
		{"unknown country", "QQ89370400440532013000", ""},
		{"lower case", "de89370400440532013000", ""},
		{"glued", "XDE89370400440532013000", ""},
		{"longer run", "DE893704004405320130001", ""},
	})
}

func TestAPIKey(t *testing.T) {
	t.Parallel()
	runDetectorCases(t, detAPIKey, []detectorCase{
		{"openai project", "OPENAI_API_KEY=" + openAIKey, "OPENAI_API_KEY=[REDACTED:api_key]"},
		{"openai legacy", "key: " + openAILegacy + ".", "key: [REDACTED:api_key]."},
		{"anthropic", `"` + anthropicKey + `"`, `"[REDACTED:api_key]"`},
		{"aws", "aws_access_key_id = " + awsKey, "aws_access_key_id = [REDACTED:api_key]"},
		{"aws temporary", awsTempKey, "[REDACTED:api_key]"},
		{"github", "token " + githubToken, "token [REDACTED:api_key]"},
		{"github pat", githubPAT, "[REDACTED:api_key]"},
		{"slack", "SLACK=" + slackToken, "SLACK=[REDACTED:api_key]"},
		{"google", "?key=" + googleKey + "&q=1", "?key=[REDACTED:api_key]&q=1"},
		{"stripe", "Bearer " + stripeKey, "Bearer [REDACTED:api_key]"},
		{"gatehouse", "Authorization: Bearer " + gatehouseKey, "Authorization: Bearer [REDACTED:api_key]"},
		{"gatehouse admin", adminToken, "[REDACTED:api_key]"},
		{"sk- in prose", "we use sk-learn and sk-image for ML", ""},
		{"placeholder", "export OPENAI_API_KEY=sk-your-api-key-goes-here-now", ""},
		{"inside a word", "task-" + openAILegacy, ""},
		{"aws too short", "AKIA1234567890", ""},
		{"aws too long", awsKey + "X", ""},
		{"github too short", "ghp_abc123", ""},
		{"google wrong length", googleKey[:len(googleKey)-1], ""},
		{"gatehouse bad shape", "gate_" + "K3X9Q2M8W1Z7" + "_" + "Ab3De6Gh9Jk2Mn5Pq8St1Vw4Yz7Bc0Ef", ""},
		{"slack without digits", "xoxb-abcdefghijklmnop", ""},
	})
}

func TestPrivateKey(t *testing.T) {
	t.Parallel()
	runDetectorCases(t, detPEM, []detectorCase{
		{"rsa", "key:\n" + pemRSA + "\nthanks", "key:\n[REDACTED:private_key]\nthanks"},
		{"openssh", pemOpenSSH, "[REDACTED:private_key]"},
		{"encrypted with headers", pemEncrypted + " ok", "[REDACTED:private_key] ok"},
		{"escaped newlines", `"key": "` + pemPKCS8 + `"`, `"key": "[REDACTED:private_key]\n"`},
		{"truncated paste", "-----BEGIN " + "EC PRIVATE KEY-----\nMHcCAQEEIIrYSSNQFaA2Hwf1duRSxKtLYX5CB04fSeQ6tF1aY/PuoAoGCCqGSM49\n", "[REDACTED:private_key]\n"},
		{"truncated runs to punctuation", "-----BEGIN " + "PRIVATE KEY-----\nMIIEvQ\nthat is all. Bye", "[REDACTED:private_key]. Bye"},
		{"certificate", "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----", ""},
		{"public key", "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0B\n-----END PUBLIC KEY-----", ""},
		{"marker in prose", "PEM files start with -----BEGIN and a label", ""},
		{"dashes", "----- ---------- -----BEGIN-----", ""},
	})
}

func TestCustomRegex(t *testing.T) {
	t.Parallel()
	p := mustCompile(t,
		customRule("ticket", `ACME-\d{4,8}`, modeRedact),
		customRule("codename", `(?i)\bproject[ -]falcon\b`, modeRedact),
		customRule("line", `(?m)^secret: \w+`, modeRedact),
	)
	for _, tc := range []detectorCase{
		{"ticket", "see ACME-1234 and ACME-98765432.", "see [REDACTED:custom_regex] and [REDACTED:custom_regex]."},
		{"ticket too short", "ACME-123", ""},
		{"ticket longest", "ACME-123456789", "[REDACTED:custom_regex]9"},
		{"codename", "Project Falcon ships; project-falcon too", "[REDACTED:custom_regex] ships; [REDACTED:custom_regex] too"},
		{"codename word boundary", "projectfalcon, project falcons, xproject falcon", ""},
		{"line anchor", "a\nsecret: hunter2\nb", "a\n[REDACTED:custom_regex]\nb"},
		{"line anchor mid-line", "my secret: hunter2", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			want := tc.want
			if want == "" {
				want = tc.in
			}
			checkRedacts(t, p, tc.in, want)
		})
	}
}

func TestCustomRegexBoundsRepetition(t *testing.T) {
	t.Parallel()
	p := mustCompile(t, customRule("digits", `X\d+`, modeRedact))
	in := "X" + strings.Repeat("7", 300) + " end"
	// X\d+ is X\d{1,64}: the match takes 64 digits, the rest stays.
	checkRedacts(t, p, in, "[REDACTED:custom_regex]"+strings.Repeat("7", 300-64)+" end")
}

func TestLuhnAndMod97(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		digits string
		want   bool
	}{
		{"4111111111111111", true}, {"4111111111111112", false}, {"79927398713", true}, {"0", true}, {"18", true}, {"19", false},
	} {
		if got := luhn([]byte(tc.digits)); got != tc.want {
			t.Errorf("luhn(%s) = %v", tc.digits, got)
		}
	}
	for _, tc := range []struct {
		iban string
		want bool
	}{
		{"DE89370400440532013000", true}, {"GB82WEST12345698765432", true}, {"CH9300762011623852957", true},
		{"GB82WEST12345698765433", false}, {"NO9386011117947", true},
	} {
		if got := ibanChecksum([]byte(tc.iban)); got != tc.want {
			t.Errorf("ibanChecksum(%s) = %v", tc.iban, got)
		}
	}
}
