package llm

import "testing"

func TestScrubOperator(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{`in organization org-AbCdEf0123456789XyZabc12 on`, `in organization [redacted] on`},
		{`project proj_Zyx9876543210abcdefGHIJ.`, `project [redacted].`},
		{`Incorrect API key provided: sk-abc12*************************xyz9.`, `Incorrect API key provided: [redacted].`},
		{`key sk-ant-api03-AAAAAAAAAAAAAAAA`, `key [redacted]`},
		{`key=AIzaSyA1234567890abcdefghijklmnopqrs`, `key=[redacted]`},
		{`This request would exceed the rate limit for your organization (a22cf6e6-a940-4d1b-9f0e-0123456789ab) of 1,000,000 input tokens`,
			`This request would exceed the rate limit for your organization ([redacted]) of 1,000,000 input tokens`},
		{`limit (org: 9D50EF40-0000-4000-8000-00000000ABCD, model: claude)`, `limit (org: [redacted], model: claude)`},
		// Not the operator's: words that merely contain the prefixes.
		{`a risk-free desk-lamp for the org-chart of sk-learn`, `a risk-free desk-lamp for the org-chart of sk-learn`},
		{`model gpt-4o does not exist`, `model gpt-4o does not exist`},
	} {
		if got := string(scrubOperator([]byte(tc.in))); got != tc.want {
			t.Errorf("scrubOperator(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
