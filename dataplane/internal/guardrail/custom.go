package guardrail

import (
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"strings"
	"unicode"
	"unicode/utf8"
)

// A custom rule's pattern is RE2 syntax (Go regexp), matched leftmost-first like
// regexp.FindAllString. To stream it, the gateway must know how long a match can be, so
// unbounded repetitions are bounded: x*, x+ and x{n,} match at most customRepeatCap (64)
// more times (a longer run of x yields several matches). A pattern that can match
// empty text, whose matches may then exceed customMaxWidth (1 KiB), or whose program
// exceeds customMaxInsts instructions, is refused: searching costs up to the program
// size per byte, and a stream rescans up to the width.
//
// A stream filter holds back up to the pattern's maximum width plus 4 bytes —
// "ACME-\d{6}" 15 bytes, "(?i)secret.*" about 270 — counted from the first byte in
// that tail that can start a match ("(?i)secret" starts with s or S), and when the
// pattern starts with a literal ("ACME-") from the last occurrence of it, or of its
// beginning, at the end of the text. Keep patterns tight to keep streams fluid.
type customFinder struct {
	re     *regexp.Regexp // the bounded pattern
	ctx    *regexp.Regexp // (?s:.)(?:pattern): searches after one rune of context
	first  *byteSet       // bytes a match can start with
	width  int            // the longest match, in bytes
	prefix string         // literal every match starts with, if any
	// literal is a string every match contains (ASCII case-insensitively when fold):
	// where it does not occur, the regexp need not run.
	literal string
	fold    bool
}

const (
	customRepeatCap = 64
	customMaxWidth  = 1024
	// customMaxInsts bounds the compiled program: a search costs up to its size per
	// byte of text.
	customMaxInsts = 512
)

func compileCustom(pattern string) (*customFinder, error) {
	if pattern == "" {
		return nil, errors.New("custom_regex needs a pattern")
	}
	tree, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("bad pattern: %w", err)
	}
	bounded := boundRepeats(tree).String()
	// Re-parse what will be compiled, so the widths are those of the real thing.
	tree, err = syntax.Parse(bounded, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("bad pattern (repetitions bounded to %d): %w", customRepeatCap, err)
	}
	lo, hi := widths(tree)
	if lo == 0 {
		return nil, errors.New("bad pattern: it can match empty text")
	}
	if hi > customMaxWidth {
		return nil, fmt.Errorf("bad pattern: a match may be %d bytes long, over the limit of %d (repetitions are bounded to %d); bound it with {m,n}",
			hi, customMaxWidth, customRepeatCap)
	}
	prog, err := syntax.Compile(tree.Simplify())
	if err != nil {
		return nil, fmt.Errorf("bad pattern: %w", err)
	}
	if n := len(prog.Inst); n > customMaxInsts {
		return nil, fmt.Errorf("bad pattern: too complex (%d instructions once repetitions are bounded to %d, limit %d)",
			n, customRepeatCap, customMaxInsts)
	}
	re, err := regexp.Compile(bounded)
	if err != nil {
		return nil, fmt.Errorf("bad pattern (repetitions bounded to %d): %w", customRepeatCap, err)
	}
	c := &customFinder{re: re, width: hi, first: new(byteSet)}
	c.prefix, _ = re.LiteralPrefix()
	c.literal, c.fold = requiredLiteral(tree)
	firstBytes(tree, c.first)
	if c.ctx, err = regexp.Compile(`(?s:.)(?:` + bounded + `)`); err != nil {
		return nil, fmt.Errorf("bad pattern: %w", err)
	}
	return c, nil
}

// boundRepeats rewrites unbounded repetitions in place.
func boundRepeats(re *syntax.Regexp) *syntax.Regexp {
	for i, sub := range re.Sub {
		re.Sub[i] = boundRepeats(sub)
	}
	switch re.Op {
	case syntax.OpStar:
		re.Op, re.Min, re.Max = syntax.OpRepeat, 0, customRepeatCap
	case syntax.OpPlus:
		re.Op, re.Min, re.Max = syntax.OpRepeat, 1, customRepeatCap
	case syntax.OpRepeat:
		if re.Max < 0 {
			re.Max = min(re.Min+customRepeatCap, 1000)
		}
	}
	return re
}

// widths returns the least and the most bytes a match of re consumes. The most is
// capped at a large value for unbounded expressions.
func widths(re *syntax.Regexp) (lo, hi int) {
	const huge = 1 << 30
	sat := func(n int) int { return min(n, huge) }
	switch re.Op {
	case syntax.OpNoMatch:
		return 1, 0
	case syntax.OpLiteral:
		for _, r := range re.Rune {
			n := runeLen(r)
			if re.Flags&syntax.FoldCase != 0 {
				for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
					n = max(n, runeLen(f))
				}
			}
			hi += n
		}
		return len(re.Rune), hi
	case syntax.OpCharClass:
		if len(re.Rune) == 0 {
			return 1, 0
		}
		return runeLen(re.Rune[0]), runeLen(re.Rune[len(re.Rune)-1])
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		return 1, utf8.UTFMax
	case syntax.OpCapture:
		return widths(re.Sub[0])
	case syntax.OpStar:
		return 0, huge
	case syntax.OpPlus:
		lo, _ := widths(re.Sub[0])
		return lo, huge
	case syntax.OpQuest:
		_, hi := widths(re.Sub[0])
		return 0, hi
	case syntax.OpRepeat:
		lo, hi := widths(re.Sub[0])
		if re.Max < 0 {
			return sat(lo * re.Min), huge
		}
		return sat(lo * re.Min), sat(hi * re.Max)
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			l, h := widths(sub)
			lo, hi = sat(lo+l), sat(hi+h)
		}
		return lo, hi
	case syntax.OpAlternate:
		lo = huge
		for _, sub := range re.Sub {
			l, h := widths(sub)
			lo, hi = min(lo, l), max(hi, h)
		}
		return lo, hi
	}
	// Empty-width assertions and OpEmptyMatch.
	return 0, 0
}

func runeLen(r rune) int {
	switch {
	case r < 0x80:
		return 1
	case r < 0x800:
		return 2
	case r < 0x10000:
		return 3
	}
	return 4
}

// window: the longest match and enough bytes after it to decide an assertion (\b, $)
// and to decode the rune that follows.
func (c *customFinder) window() int { return c.width + utf8.UTFMax }

func (c *customFinder) next(s string, from int, final bool) (int, int, bool, int) {
	// Starts before limit are decided: everything that can influence them is in s.
	limit := len(s) - c.window() + 1
	q, e, ok := c.find(s, from)
	if ok && (final || q < limit) {
		return q, e, true, q
	}
	if final {
		return 0, 0, false, len(s)
	}
	// A match can only start at a byte of the first set (and with the literal prefix).
	hold := max(from, limit)
	for hold < len(s) && !c.first[s[hold]] {
		hold++
	}
	if c.prefix != "" && hold < len(s) {
		hold = holdForLiteral(s, hold, c.prefix)
	}
	return 0, 0, false, hold
}

// find returns the leftmost match starting at or after from, as the regexp would find
// it searching the whole text: the search starts at the first byte that can start a
// match, backed up to the start of the UTF-8 sequence before it, and (?s:.) consumes
// that sequence — so \b and (?m)^ see the real byte before, and the offsets tried are
// those the whole-text search steps through, whatever from is. The search is linear in
// the text, like every regexp search.
func (c *customFinder) find(s string, from int) (int, int, bool) {
	q := from
	for q < len(s) && !c.first[s[q]] {
		q++
	}
	if q == len(s) || c.literal != "" && !containsLiteral(s[q:], c.literal, c.fold) {
		return 0, 0, false
	}
	if q == 0 {
		loc := c.re.FindStringIndex(s)
		if loc == nil {
			return 0, 0, false
		}
		return loc[0], loc[1], true
	}
	p := runeStart(s, q-1)
	loc := c.ctx.FindStringIndex(s[p:])
	if loc == nil {
		return 0, 0, false
	}
	_, w := utf8.DecodeRuneInString(s[p+loc[0]:])
	return p + loc[0] + w, p + loc[1], true
}

// runeStart returns the start of the UTF-8 sequence holding the byte at i (i itself
// for ASCII and for bytes of invalid sequences).
func runeStart(s string, i int) int {
	for k := 1; k < utf8.UTFMax && k <= i; k++ {
		if utf8.RuneStart(s[i-k]) {
			if _, w := utf8.DecodeRuneInString(s[i-k:]); w > k {
				return i - k
			}
			break
		}
	}
	return i
}

// requiredLiteral returns the longest literal of the pattern's top-level sequence, which
// every match contains, and whether it is matched ASCII case-insensitively. It returns ""
// when there is none, or when case folding reaches beyond ASCII (K and the Kelvin sign).
func requiredLiteral(re *syntax.Regexp) (string, bool) {
	for re.Op == syntax.OpCapture {
		re = re.Sub[0]
	}
	subs := []*syntax.Regexp{re}
	if re.Op == syntax.OpConcat {
		subs = re.Sub
	}
	var best string
	var fold bool
	for _, sub := range subs {
		for sub.Op == syntax.OpCapture {
			sub = sub.Sub[0]
		}
		if sub.Op != syntax.OpLiteral || len(sub.Rune) <= len(best) {
			continue
		}
		f := sub.Flags&syntax.FoldCase != 0
		if lit, ok := asciiLiteral(sub.Rune, f); ok {
			best, fold = lit, f
		}
	}
	return best, fold
}

func asciiLiteral(runes []rune, fold bool) (string, bool) {
	b := make([]byte, len(runes))
	for i, r := range runes {
		if r >= utf8.RuneSelf {
			return "", false
		}
		if fold {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				if f >= utf8.RuneSelf {
					return "", false
				}
			}
			r = unicode.ToLower(r)
		}
		b[i] = byte(r)
	}
	return string(b), true
}

// containsLiteral reports whether s contains lit, ignoring ASCII case when fold (lit
// is then lower case).
func containsLiteral(s, lit string, fold bool) bool {
	if !fold {
		return strings.Contains(s, lit)
	}
	for i := 0; i+len(lit) <= len(s); i++ {
		if lower(s[i]) == lit[0] && hasFoldPrefix(lit, s[i:i+len(lit)]) {
			return true
		}
	}
	return false
}

// firstBytes adds to set every byte a match of re can start with and reports whether
// re can match empty (so what follows it can start the match too).
func firstBytes(re *syntax.Regexp, set *byteSet) (nullable bool) {
	switch re.Op {
	case syntax.OpNoMatch:
		return false
	case syntax.OpLiteral:
		r := re.Rune[0]
		addRune(set, r)
		if re.Flags&syntax.FoldCase != 0 {
			for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
				addRune(set, f)
			}
		}
		return false
	case syntax.OpCharClass:
		for i := 0; i+1 < len(re.Rune); i += 2 {
			lo, hi := re.Rune[i], re.Rune[i+1]
			for r := lo; r <= min(hi, 0x7f); r++ {
				set[r] = true
			}
			if hi >= 0x80 {
				// Any lead byte; and U+FFFD also matches invalid bytes.
				for b := 0x80; b < 0x100; b++ {
					set[b] = true
				}
			}
		}
		return false
	case syntax.OpAnyChar, syntax.OpAnyCharNotNL:
		for b := range set {
			set[b] = true
		}
		return false
	case syntax.OpCapture, syntax.OpPlus:
		return firstBytes(re.Sub[0], set)
	case syntax.OpStar, syntax.OpQuest:
		firstBytes(re.Sub[0], set)
		return true
	case syntax.OpRepeat:
		return firstBytes(re.Sub[0], set) || re.Min == 0
	case syntax.OpConcat:
		for _, sub := range re.Sub {
			if !firstBytes(sub, set) {
				return false
			}
		}
		return true
	case syntax.OpAlternate:
		for _, sub := range re.Sub {
			if firstBytes(sub, set) {
				nullable = true
			}
		}
		return nullable
	}
	// Empty-width assertions and OpEmptyMatch.
	return true
}

// addRune adds the first byte of r's encoding; U+FFFD also stands for invalid bytes.
func addRune(set *byteSet, r rune) {
	if r < 0x80 {
		set[r] = true
		return
	}
	var buf [utf8.UTFMax]byte
	utf8.EncodeRune(buf[:], r)
	set[buf[0]] = true
	if r == utf8.RuneError {
		for b := 0x80; b < 0x100; b++ {
			set[b] = true
		}
	}
}

// holdForLiteral returns the first offset ≥ hold where lit occurs, or where the end of
// s is a beginning of lit, or len(s).
func holdForLiteral(s string, hold int, lit string) int {
	if i := strings.Index(s[hold:], lit); i >= 0 {
		return hold + i
	}
	for k := min(len(lit)-1, len(s)-hold); k > 0; k-- {
		if strings.HasSuffix(s, lit[:k]) {
			return len(s) - k
		}
	}
	return len(s)
}
