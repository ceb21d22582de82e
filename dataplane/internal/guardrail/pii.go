package guardrail

import "strings"

// byteSet is a set of ASCII bytes.
type byteSet [256]bool

func newByteSet(ranges ...string) *byteSet {
	var s byteSet
	for _, r := range ranges {
		for i := 0; i < len(r); i++ {
			if i+2 < len(r) && r[i+1] == '-' {
				for c := r[i]; c <= r[i+2]; c++ {
					s[c] = true
				}
				i += 2
				continue
			}
			s[r[i]] = true
		}
	}
	return &s
}

var (
	upperSet = newByteSet("A-Z")
	alnumSet = newByteSet("A-Za-z0-9")
)

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// nextStart returns the first offset ≥ q holding a byte of start not preceded by a byte
// of blocked, or len(s).
func nextStart(s string, q int, start, blocked *byteSet) int {
	if q >= len(s) {
		return len(s)
	}
	ok := q == 0 || !blocked[s[q-1]]
	for ; q < len(s); q++ {
		c := s[q]
		if ok && start[c] {
			return q
		}
		ok = !blocked[c]
	}
	return len(s)
}

// ---- e-mail addresses ----

// An e-mail address is a local part of 1–64 characters [A-Za-z0-9._%+-] not preceded
// by such a character, "@", and a domain of at least two dot-separated labels (letters,
// digits, inner hyphens, ≤ 63 bytes) ending in an alphabetic TLD of 2–24 letters.
// Trailing dots and hyphens (end of a sentence) are not part of the domain.
// Consequences: "@user" handles and "/@scope/pkg" paths never match (no local part);
// "user@localhost" does not (one label); the userinfo of a URL does
// ("https://bob:pw@host.example" matches "pw@host.example"), which hides the password.
type emailDetector struct{}

const (
	emailLocalMax  = 64
	emailDomainMax = 253
)

var (
	emailLocal  = newByteSet("A-Za-z0-9", "._%+-")
	emailDomain = newByteSet("A-Za-z0-9", ".-")
)

// window: local part, "@", the domain run (one byte past the maximum shows it is too
// long) and the byte that ends it.
func (emailDetector) window() int { return emailLocalMax + 1 + emailDomainMax + 2 }

func (emailDetector) candidate(s string, q int, final bool) int {
	for q < len(s) {
		i := strings.IndexByte(s[q:], '@')
		if i < 0 {
			break
		}
		t := q + i
		r := t
		for r > q && t-r <= emailLocalMax && emailLocal[s[r-1]] {
			r--
		}
		if r < t && t-r <= emailLocalMax && (r == 0 || !emailLocal[s[r-1]]) {
			return r
		}
		q = t + 1
	}
	if final || q >= len(s) {
		return len(s)
	}
	// No "@" yet: the last word may be a local part whose "@" is still to come.
	r := len(s)
	for r > q && len(s)-r < emailLocalMax && emailLocal[s[r-1]] {
		r--
	}
	if r < len(s) && (r == 0 || !emailLocal[s[r-1]]) {
		return r
	}
	return len(s)
}

func (emailDetector) at(s string, q int, final bool) (int, verdict) {
	i := q
	for i < len(s) && emailLocal[s[i]] && i-q <= emailLocalMax {
		i++
	}
	if i == len(s) {
		return 0, undecided(final)
	}
	if s[i] != '@' || i == q || i-q > emailLocalMax {
		return 0, no
	}
	d := i + 1
	j := d
	for j < len(s) && emailDomain[s[j]] && j-d <= emailDomainMax {
		j++
	}
	if j-d > emailDomainMax {
		return 0, no
	}
	if j == len(s) && !final {
		return 0, maybe
	}
	e := j
	for e > d && (s[e-1] == '.' || s[e-1] == '-') {
		e--
	}
	if !validDomain(s[d:e]) {
		return 0, no
	}
	return e, yes
}

func validDomain(d string) bool {
	labels := 0
	for d != "" {
		label, rest, more := strings.Cut(d, ".")
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		labels++
		if !more {
			// The TLD: letters only.
			if labels < 2 || len(label) < 2 || len(label) > 24 {
				return false
			}
			for i := 0; i < len(label); i++ {
				if !upperSet[label[i]&^0x20] {
					return false
				}
			}
			return true
		}
		d = rest
	}
	return false
}

// ---- phone numbers ----

// A phone number is an optional "+", then digit groups separated by one space, "-" or
// "." (or nothing next to a single parenthesised group of 1–5 digits), starting after a
// byte that is not a letter, digit or one of "_+-./()$#@%&=\" and ending at a digit not
// followed by a letter or digit. It needs 8–15 digits with "+", 10–12 digits with
// separators and exactly 10–11 digits without.
//
// False positives are the price of catching national formats: any 10–12 digit number
// written with separators matches. Dates are excluded (4-2-2 or 2-2-4 digit groups
// joined by "-" or "."), as are dotted quads (IPv4 addresses). Numbers of 7 digits
// ("555-1234") are not detected: too many ordinary numbers look like them. Groups are
// read greedily and a run of more than 15 digits is no phone number at all, so a
// card number is never cut into a phone-sized prefix — and a phone number followed by
// a space and another long number is missed.
type phoneDetector struct{}

const phoneMaxDigits = 15

var (
	phoneStart       = newByteSet("0-9", "+(")
	phoneBlockBefore = newByteSet("A-Za-z0-9", `_+-./()$#@%&=\`)
)

// window: "+", 15 digits with a separator (or "()") around each and the lookahead.
func (phoneDetector) window() int { return 1 + 3*phoneMaxDigits + 4 }

func (phoneDetector) candidate(s string, q int, _ bool) int {
	return nextStart(s, q, phoneStart, phoneBlockBefore)
}

func (phoneDetector) at(s string, q int, final bool) (int, verdict) {
	i := q
	plus := s[i] == '+'
	if plus {
		i++
		if i == len(s) {
			return 0, undecided(final)
		}
	}
	var ph phoneParse
	end, v := ph.group(s, i, 0, final)
	if v != yes {
		return 0, v
	}
	for {
		// end is just past the last group: try a separator and another group.
		if end == len(s) {
			if !final {
				return 0, maybe
			}
			break
		}
		j := end
		var sep byte
		if c := s[j]; c == ' ' || c == '-' || c == '.' {
			sep = c
			j++
			if j == len(s) {
				if !final {
					return 0, maybe
				}
				break
			}
		}
		if !isDigit(s[j]) && s[j] != '(' || sep == 0 && s[j] != '(' && !ph.lastParen {
			break
		}
		saved := ph
		e, v := ph.group(s, j, sep, final)
		if v == maybe {
			return 0, maybe
		}
		if v == no {
			if ph.tooLong {
				return 0, no
			}
			ph = saved
			break
		}
		end = e
	}
	if end < len(s) && alnumSet[s[end]] {
		return 0, no
	}
	seps := 0
	for k := 1; k < ph.groups; k++ {
		if ph.seps[k] != 0 {
			seps++
		}
	}
	switch {
	case plus:
		if ph.digits < 8 {
			return 0, no
		}
	case seps == 0 && !ph.paren:
		if ph.digits < 10 || ph.digits > 11 {
			return 0, no
		}
	default:
		if ph.digits < 10 || ph.digits > 12 {
			return 0, no
		}
	}
	if looksLikeDateOrIP(ph.lens[:ph.groups], ph.seps[:ph.groups]) {
		return 0, no
	}
	return end, yes
}

// phoneParse is the state of parsing one phone number.
type phoneParse struct {
	digits, groups int
	lens           [phoneMaxDigits]int
	seps           [phoneMaxDigits]byte // the separator before each group, 0 for none
	paren          bool                 // a parenthesised group was seen
	lastParen      bool                 // the last group was parenthesised
	tooLong        bool                 // more than phoneMaxDigits digits
}

// group parses digits, or "(" 1–5 digits ")", at i (i < len(s)).
func (ph *phoneParse) group(s string, i int, sep byte, final bool) (int, verdict) {
	open := s[i] == '('
	if open {
		if ph.paren {
			return 0, no
		}
		i++
	}
	n := 0
	for i < len(s) && isDigit(s[i]) {
		i++
		n++
		if ph.digits+n > phoneMaxDigits {
			ph.tooLong = true
			return 0, no
		}
	}
	if i == len(s) && !final {
		return 0, maybe
	}
	if n == 0 {
		return 0, no
	}
	if open {
		if n > 5 || i == len(s) || s[i] != ')' {
			return 0, no
		}
		i++
		ph.paren = true
	}
	ph.lens[ph.groups], ph.seps[ph.groups] = n, sep
	ph.groups++
	ph.digits += n
	ph.lastParen = open
	return i, yes
}

// looksLikeDateOrIP spots the digit groups of dates (2024-01-31, 31.01.2024, possibly
// followed by more groups, as in a time) and of dotted quads.
func looksLikeDateOrIP(lens []int, seps []byte) bool {
	if len(lens) >= 3 && seps[1] == seps[2] && (seps[1] == '-' || seps[1] == '.') {
		if lens[0] == 4 && lens[1] == 2 && lens[2] == 2 || lens[0] == 2 && lens[1] == 2 && lens[2] == 4 {
			return true
		}
	}
	if len(lens) == 4 {
		for k, n := range lens {
			if n > 3 || k > 0 && seps[k] != '.' {
				return false
			}
		}
		return true
	}
	return false
}

// ---- card numbers ----

// A card number is 13–19 digits, optionally grouped by single spaces or hyphens,
// starting with 2–6 (the issuer ranges of Mastercard, Amex, Diners, JCB, Visa,
// Discover and UnionPay), not preceded by a letter, digit or one of "_+-./$," and not
// followed by a letter or digit, and passing the Luhn check. A longer digit run is not a
// card (and none of its parts is). Luhn rejects nine in ten random digit strings, so
// long numeric ids still match now and then.
type cardDetector struct{}

const cardMaxDigits = 19

var (
	cardStart       = newByteSet("2-6")
	cardBlockBefore = newByteSet("A-Za-z0-9", "_+-./$,")
)

func (cardDetector) window() int { return 2*cardMaxDigits + 2 }

func (cardDetector) candidate(s string, q int, _ bool) int {
	return nextStart(s, q, cardStart, cardBlockBefore)
}

func (cardDetector) at(s string, q int, final bool) (int, verdict) {
	var num [cardMaxDigits]byte
	n := 0
	i := q
	for {
		if i == len(s) {
			if !final {
				return 0, maybe
			}
			break
		}
		c := s[i]
		if isDigit(c) {
			if n == cardMaxDigits {
				return 0, no
			}
			num[n] = c
			n++
			i++
			continue
		}
		if (c == ' ' || c == '-') && n > 0 {
			if i+1 == len(s) {
				if !final {
					return 0, maybe
				}
				break
			}
			if isDigit(s[i+1]) {
				i++
				continue
			}
		}
		break
	}
	// Back to just past the last digit.
	for !isDigit(s[i-1]) {
		i--
	}
	if i < len(s) && alnumSet[s[i]] {
		return 0, no
	}
	if n < 13 || !luhn(num[:n]) {
		return 0, no
	}
	return i, yes
}

func luhn(digits []byte) bool {
	sum := 0
	double := false
	for i := len(digits) - 1; i >= 0; i-- {
		d := int(digits[i] - '0')
		if double {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// ---- IBANs ----

// An IBAN is a country code with a known IBAN length, two check digits and the BBAN, in
// capitals and digits, optionally grouped by single spaces, not preceded or followed by
// a letter or digit, of exactly the country's length and passing the ISO 7064 mod-97
// check. Lower-case IBANs are not detected.
type ibanDetector struct{}

const ibanMaxLen = 34

func (ibanDetector) window() int { return 2*ibanMaxLen + 2 }

func (ibanDetector) candidate(s string, q int, _ bool) int {
	return nextStart(s, q, upperSet, alnumSet)
}

func (ibanDetector) at(s string, q int, final bool) (int, verdict) {
	if q+1 == len(s) {
		return 0, undecided(final)
	}
	n := ibanLengths[s[q:q+2]]
	if n == 0 {
		return 0, no
	}
	var iban [ibanMaxLen]byte
	k := 0
	i := q
	for k < n {
		if i == len(s) {
			return 0, undecided(final)
		}
		c := s[i]
		switch {
		case isDigit(c) || upperSet[c] && (k < 2 || k > 3):
			iban[k] = c
			k++
			i++
		case c == ' ' && k >= 2:
			if i+1 == len(s) {
				return 0, undecided(final)
			}
			if !alnumSet[s[i+1]] {
				return 0, no
			}
			i++
		default:
			return 0, no
		}
	}
	if i == len(s) && !final {
		return 0, maybe
	}
	if i < len(s) && alnumSet[s[i]] {
		return 0, no
	}
	if !ibanChecksum(iban[:n]) {
		return 0, no
	}
	return i, yes
}

// ibanChecksum is the ISO 7064 mod-97-10 check: the IBAN with its first four characters
// moved to the end, letters read as 10–35, is 1 modulo 97.
func ibanChecksum(iban []byte) bool {
	r := 0
	for k := range iban {
		c := iban[(k+4)%len(iban)]
		if isDigit(c) {
			r = (r*10 + int(c-'0')) % 97
		} else {
			r = (r*100 + int(c-'A') + 10) % 97
		}
	}
	return r == 1
}

// ibanLengths is the IBAN length of each country in the SWIFT IBAN registry.
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
	"BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
	"DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
	"FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
	"GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
	"JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
	"LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
	"MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
	"PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
	"SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}
