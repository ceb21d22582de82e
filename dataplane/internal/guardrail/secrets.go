package guardrail

import "strings"

// ---- API keys ----

// An API key is a token — a run of [A-Za-z0-9_-] not preceded by such a byte and at
// most apiKeyMax long — that starts with a known prefix and whose rest has the shape of
// that provider's keys (see apiKeyKinds). Matching whole tokens by prefix needs no
// regular expression and keeps "sk-" in prose ("sk-learn") or inside other words
// ("task-sk-1") from matching.
type apiKeyDetector struct{}

const apiKeyMax = 256

var keyChar = newByteSet("A-Za-z0-9", "_-")

type keyKind struct {
	prefix   string
	min, max int      // length of the rest
	chars    *byteSet // allowed in the rest
	mixed    bool     // the rest needs an upper-case letter, a lower-case letter and a digit
	digit    bool     // the rest needs a digit
	shape    func(rest string) bool
}

var (
	alnumUnderscore = newByteSet("A-Za-z0-9", "_")
	alnumHyphen     = newByteSet("A-Za-z0-9", "-")
	upperDigit      = newByteSet("A-Z0-9")
)

// apiKeyKinds, longest prefix first where prefixes nest. A token matches if any kind
// whose prefix it has accepts its rest.
var apiKeyKinds = []keyKind{
	// OpenAI (sk-proj-, sk-svcacct-, sk-admin-, legacy sk-) and Anthropic (sk-ant-):
	// random mixed-case tails; requiring all three character classes keeps
	// hyphenated prose and placeholders ("sk-your-key-here") out.
	{prefix: "sk-ant-", min: 32, max: 250, chars: keyChar, mixed: true},
	{prefix: "sk-proj-", min: 32, max: 250, chars: keyChar, mixed: true},
	{prefix: "sk-svcacct-", min: 32, max: 250, chars: keyChar, mixed: true},
	{prefix: "sk-admin-", min: 32, max: 250, chars: keyChar, mixed: true},
	{prefix: "sk-", min: 20, max: 250, chars: keyChar, mixed: true},
	// AWS access key ids (long-term and temporary).
	{prefix: "AKIA", min: 16, max: 16, chars: upperDigit},
	{prefix: "ASIA", min: 16, max: 16, chars: upperDigit},
	// GitHub tokens.
	{prefix: "ghp_", min: 30, max: 250, chars: alnumSet},
	{prefix: "gho_", min: 30, max: 250, chars: alnumSet},
	{prefix: "ghs_", min: 30, max: 250, chars: alnumSet},
	{prefix: "ghu_", min: 30, max: 250, chars: alnumSet},
	{prefix: "ghr_", min: 30, max: 250, chars: alnumSet},
	{prefix: "github_pat_", min: 40, max: 240, chars: alnumUnderscore},
	// Slack tokens.
	{prefix: "xoxb-", min: 10, max: 250, chars: alnumHyphen, digit: true},
	{prefix: "xoxa-", min: 10, max: 250, chars: alnumHyphen, digit: true},
	{prefix: "xoxp-", min: 10, max: 250, chars: alnumHyphen, digit: true},
	{prefix: "xoxr-", min: 10, max: 250, chars: alnumHyphen, digit: true},
	{prefix: "xoxs-", min: 10, max: 250, chars: alnumHyphen, digit: true},
	// Google API keys.
	{prefix: "AIza", min: 35, max: 35, chars: keyChar},
	// Stripe live secret and restricted keys.
	{prefix: "sk_live_", min: 16, max: 240, chars: alnumSet},
	{prefix: "rk_live_", min: 16, max: 240, chars: alnumSet},
	// Gatehouse team keys and admin tokens: <prefix><12 [a-z0-9]>_<32 [A-Za-z0-9]>.
	{prefix: "gate_", min: 45, max: 45, chars: alnumUnderscore, shape: gatehouseKeyShape},
	{prefix: "gadm_", min: 45, max: 45, chars: alnumUnderscore, shape: gatehouseKeyShape},
}

var (
	lowerDigit = newByteSet("a-z0-9")
	// keysByFirst lists the kinds by the first byte of their prefix.
	keysByFirst = func() *[256][]*keyKind {
		var m [256][]*keyKind
		for i := range apiKeyKinds {
			k := &apiKeyKinds[i]
			m[k.prefix[0]] = append(m[k.prefix[0]], k)
		}
		return &m
	}()
	keyStart = func() *byteSet {
		var s byteSet
		for _, k := range apiKeyKinds {
			s[k.prefix[0]] = true
		}
		return &s
	}()
	// apiKeyMin is the shortest key of any kind.
	apiKeyMin = func() int {
		n := apiKeyMax
		for _, k := range apiKeyKinds {
			n = min(n, len(k.prefix)+k.min)
		}
		return n
	}()
)

func gatehouseKeyShape(rest string) bool {
	if rest[12] != '_' {
		return false
	}
	for i := 0; i < 12; i++ {
		if !lowerDigit[rest[i]] {
			return false
		}
	}
	for i := 13; i < len(rest); i++ {
		if !alnumSet[rest[i]] {
			return false
		}
	}
	return true
}

func (k *keyKind) accepts(rest string) bool {
	if len(rest) < k.min || len(rest) > k.max {
		return false
	}
	var upper, lower, digit bool
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		if !k.chars[c] {
			return false
		}
		switch {
		case 'A' <= c && c <= 'Z':
			upper = true
		case 'a' <= c && c <= 'z':
			lower = true
		case isDigit(c):
			digit = true
		}
	}
	if k.mixed && !(upper && lower && digit) || k.digit && !digit {
		return false
	}
	return k.shape == nil || k.shape(rest)
}

// window: the longest token and the byte after it.
func (apiKeyDetector) window() int { return apiKeyMax + 2 }

func (apiKeyDetector) candidate(s string, q int, _ bool) int {
	return nextStart(s, q, keyStart, keyChar)
}

func (apiKeyDetector) at(s string, q int, final bool) (int, verdict) {
	i := q
	for i < len(s) && keyChar[s[i]] && i-q <= apiKeyMax {
		i++
	}
	tok := s[q:i]
	if len(tok) > apiKeyMax {
		return 0, no
	}
	kinds := keysByFirst[tok[0]]
	if i == len(s) && !final {
		// The token may go on: wait if it could still become a key.
		for _, k := range kinds {
			if strings.HasPrefix(k.prefix, tok) || strings.HasPrefix(tok, k.prefix) {
				return 0, maybe
			}
		}
		return 0, no
	}
	if len(tok) < apiKeyMin {
		return 0, no
	}
	for _, k := range kinds {
		if rest, ok := strings.CutPrefix(tok, k.prefix); ok && k.accepts(rest) {
			return i, yes
		}
	}
	return 0, no
}

// ---- PEM private keys ----

// A private key is a PEM block: "-----BEGIN <label>-----" where the label ends in
// "PRIVATE KEY" or "PRIVATE KEY BLOCK" (RSA, EC, DSA, OPENSSH, ENCRYPTED, PGP, PKCS#8…),
// then the body — base64, whitespace, literal "\n" escapes and "Name: value" header
// lines — then "-----END <label>-----". Without an END line (a truncated paste), the
// match ends with the body. A block is cut at pemMax bytes: a stream filter holds the
// text from BEGIN until the body ends, so pemMax bounds what it buffers.
// Without an END line the body may run on into following words (they are base64
// characters) up to the first punctuation: redaction errs on the side of hiding.
type privateKeyDetector struct{}

const (
	pemBegin     = "-----BEGIN "
	pemEnd       = "-----END "
	pemDashes    = "-----"
	pemLabelMax  = 48
	pemMax       = 16 << 10
	pemHeaderMax = 256
)

var (
	pemLabel = newByteSet("A-Z0-9", " #")
	pemBody  = newByteSet("A-Za-z0-9", "+/=\\", " \t\r\n")
)

// window: a block of pemMax bytes, plus a header line or END line read past the cap.
func (privateKeyDetector) window() int { return pemMax + pemHeaderMax + 2*pemLabelMax }

func (privateKeyDetector) candidate(s string, q int, final bool) int {
	if i := strings.Index(s[q:], pemBegin); i >= 0 {
		return q + i
	}
	if !final {
		// The marker may be split: "…-----BEG".
		for k := min(len(pemBegin)-1, len(s)-q); k > 0; k-- {
			if strings.HasSuffix(s, pemBegin[:k]) {
				return len(s) - k
			}
		}
	}
	return len(s)
}

func (privateKeyDetector) at(s string, q int, final bool) (int, verdict) {
	i, v := pemMarker(s, q, pemBegin, final)
	if v != yes {
		return 0, v
	}
	// The body.
	k := i
	for {
		if k-q >= pemMax {
			return q + pemMax, yes
		}
		if k == len(s) {
			if !final {
				return 0, maybe
			}
			break
		}
		if k == i || s[k-1] == '\n' {
			e, v := pemHeader(s, k, final)
			if v == maybe {
				return 0, maybe
			}
			if v == yes {
				k = e
				continue
			}
		}
		if !pemBody[s[k]] {
			break
		}
		k++
	}
	if strings.HasPrefix(s[k:], "-") {
		e, v := pemMarker(s, k, pemEnd, final)
		switch v {
		case maybe:
			return 0, maybe
		case yes:
			return min(e, q+pemMax), yes
		}
	}
	// No END line: the block ends with its last non-space byte.
	for k > i && (s[k-1] == ' ' || s[k-1] == '\t' || s[k-1] == '\r' || s[k-1] == '\n') {
		k--
	}
	return k, yes
}

// pemMarker matches "<marker><label>-----" at q, with a label ending in PRIVATE KEY
// (or PRIVATE KEY BLOCK), and returns its end.
func pemMarker(s string, q int, marker string, final bool) (int, verdict) {
	rest := s[q:]
	if len(rest) < len(marker) {
		if strings.HasPrefix(marker, rest) {
			return 0, undecided(final)
		}
		return 0, no
	}
	if !strings.HasPrefix(rest, marker) {
		return 0, no
	}
	i := q + len(marker)
	j := i
	for j < len(s) && pemLabel[s[j]] && j-i <= pemLabelMax {
		j++
	}
	if j-i > pemLabelMax {
		return 0, no
	}
	if len(s)-j < len(pemDashes) {
		if strings.HasPrefix(pemDashes, s[j:]) {
			return 0, undecided(final)
		}
		return 0, no
	}
	if !strings.HasPrefix(s[j:], pemDashes) {
		return 0, no
	}
	label := s[i:j]
	if !strings.HasSuffix(label, "PRIVATE KEY") && !strings.HasSuffix(label, "PRIVATE KEY BLOCK") {
		return 0, no
	}
	return j + len(pemDashes), yes
}

// pemHeader matches a "Name: value" line at k (Proc-Type, DEK-Info, Version, Comment)
// and returns the offset after its newline.
func pemHeader(s string, k int, final bool) (int, verdict) {
	j := k
	for j < len(s) && j-k < 32 && (alnumSet[s[j]] || s[j] == '-') {
		j++
	}
	if j == len(s) {
		return 0, undecided(final)
	}
	if j == k || s[j] != ':' || !upperSet[s[k]&^0x20] {
		return 0, no
	}
	nl := strings.IndexByte(s[j:min(len(s), k+pemHeaderMax)], '\n')
	if nl < 0 {
		if len(s) < k+pemHeaderMax {
			return 0, undecided(final)
		}
		return 0, no
	}
	return j + nl + 1, yes
}
