package guardrail

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"path"
	"slices"
	"strings"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
)

// ErrNotJSONObject means a body given to CheckRequestJSON or CheckResponseJSON is not a
// JSON object.
var ErrNotJSONObject = errors.New("body is not a JSON object")

// BodyOutcome is the verdict on a JSON body.
type BodyOutcome struct {
	// Blocked is set when a BLOCK rule matched; Body is then nil.
	Blocked *BlockedError
	// Body is the body to forward: the input itself when nothing was redacted, else a
	// re-encoded copy (fields written in sorted order, numbers as they were).
	Body []byte
	// Changed reports that Body differs from the input.
	Changed bool
	// Events has one event per rule that matched, in policy order.
	Events []*gatehousev1.GuardrailEvent
}

// Which strings of a body are text. A text value is a string, or an array whose string
// elements, and whose objects' "text" (string), "content" (a text value) and "output"
// (every string in it: a tool's output) members, are text; so are documents (see
// walkDocument): the text of an Anthropic document block (a text source's data, a
// content source's content, its context, a base64 source's decoded text when textual)
// and the decoded text of a textual file in base64 (a chat `file` part's file_data, a
// Responses input_file's), the thinking callers send back (see walkThinking), the
// tool calls they send back (chat tool_calls' arguments, a Messages tool_use block's
// input, a Responses function_call's arguments) and the descriptions of the tools they
// define. Other members (images, PDFs and other binary files, ids, roles, tool names)
// are not checked: a PDF's contents are not inspected.
var (
	// Chat completions and Anthropic messages (messages[*].content, system), the
	// Responses API (input, instructions), legacy completions and embeddings (prompt,
	// input).
	// Tool definitions (tools: their descriptions, their parameters' descriptions)
	// are read by the model too, and are where injected instructions hide.
	requestTextFields = []string{"messages", "input", "system", "instructions", "prompt", "tools", "functions"}
	// Chat completions (choices[*].message.content, choices[*].text), Anthropic
	// (content[*].text) and the Responses API (output[*].content[*].text).
	responseTextFields = []string{"choices", "content", "output"}
)

// visitFunc is called on each text of a body, in order, and returns what replaces it.
// joins says the text continues the one visited just before it, as the model reads
// them: the next text part of the same content.
type visitFunc func(s string, joins bool) string

// CheckRequestJSON applies the request rules to the text of an LLM request body:
// messages[*].content (a string or an array of parts, documents' text included),
// system, input, instructions and prompt — see requestTextFields. The texts are
// checked as CheckRequest checks them (a match may cross from one into the next); a
// redacted text file is encoded again in base64. It returns
// ErrNotJSONObject when body is not a JSON object.
func (p *Policy) CheckRequestJSON(body []byte) (BodyOutcome, error) {
	if !p.HasRequestRules() {
		return BodyOutcome{Body: body}, nil
	}
	return checkJSON(p.request, body, requestTextFields, true)
}

// CheckResponseJSON applies the response rules to the text of a complete (not
// streamed) LLM response body: choices[*].message.content, choices[*].text, content and
// output — see responseTextFields.
func (p *Policy) CheckResponseJSON(body []byte) (BodyOutcome, error) {
	if !p.HasResponseRules() {
		return BodyOutcome{Body: body}, nil
	}
	return checkJSON(p.response, body, responseTextFields, false)
}

func checkJSON(set *ruleSet, body []byte, fields []string, joined bool) (BodyOutcome, error) {
	top, ok := splitMembers(body)
	if !ok {
		return BodyOutcome{}, ErrNotJSONObject
	}
	// encoding/json, which the translators decode with, fills a field from every member
	// whose name matches it case-insensitively (keys unescaped first), the later ones
	// over the earlier; so is every such member checked, repeated ones too.
	trees := make([]any, len(top))
	var texts []string
	var joins []bool
	collect := func(s string, j bool) string {
		texts = append(texts, s)
		joins = append(joins, j)
		return s
	}
	// spans[i] is the range of texts of top[i].
	spans := make([][2]int, len(top))
	for i, m := range top {
		f := fieldNamed(fields, m.key)
		if f == "" {
			continue
		}
		v, err := decodeTree(m.raw)
		if err != nil {
			return BodyOutcome{}, ErrNotJSONObject
		}
		trees[i] = v
		spans[i][0] = len(texts)
		walkField(f, v, collect)
		spans[i][1] = len(texts)
	}
	if !joined {
		joins = nil
	}
	o := set.checkTexts(texts, joins)
	out := BodyOutcome{Blocked: o.Blocked, Events: o.Events}
	if o.Blocked != nil {
		return out, nil
	}
	if !o.Changed {
		out.Body = body
		return out, nil
	}
	// Walk again in the same order, writing the redacted texts back.
	next := 0
	replace := func(string, bool) string {
		next++
		return o.Texts[next-1]
	}
	for i, m := range top {
		if trees[i] == nil {
			continue
		}
		if a, b := spans[i][0], spans[i][1]; slices.Equal(o.Texts[a:b], texts[a:b]) {
			// Nothing of it changed: kept as it came (a re-encoding would reorder
			// its keys, and the order of a tool schema's properties matters).
			next = b
			continue
		}
		v := walkField(fieldNamed(fields, m.key), trees[i], replace)
		raw, err := marshal(v)
		if err != nil {
			return BodyOutcome{}, err
		}
		top[i].raw = raw
	}
	out.Body, out.Changed = writeMembers(top), true
	return out, nil
}

// fieldNamed returns the field of fields that key names, as encoding/json matches
// names, or "".
func fieldNamed(fields []string, key string) string {
	for _, f := range fields {
		if strings.EqualFold(f, key) {
			return f
		}
	}
	return ""
}

// rawMember is a member of a JSON object, its key unescaped and its value as it was.
type rawMember struct {
	key string
	raw json.RawMessage
}

// splitMembers splits a JSON object into its members, in order, repeated keys kept.
func splitMembers(body []byte) ([]rawMember, bool) {
	d := json.NewDecoder(bytes.NewReader(body))
	if t, err := d.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var members []rawMember
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return nil, false
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return nil, false
		}
		members = append(members, rawMember{key, raw})
	}
	if t, err := d.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	if _, err := d.Token(); err != io.EOF {
		return nil, false
	}
	return members, true
}

// object is a decoded JSON object that keeps its members in order and its repeated
// keys: encoding/json decodes each repeated member into the same field (merging
// objects, and array elements within the capacity already decoded), so each is checked.
type object []member

type member struct {
	key string
	val any
}

// walk replaces the value of each member that encoding/json would decode into a field
// named key by what fn returns for it.
func (o object) walk(key string, fn func(any) any) {
	for i := range o {
		if strings.EqualFold(o[i].key, key) {
			o[i].val = fn(o[i].val)
		}
	}
}

// strings returns the string values of the members named key.
func (o object) strings(key string) []string {
	var out []string
	for _, m := range o {
		if s, ok := m.val.(string); ok && strings.EqualFold(m.key, key) {
			out = append(out, s)
		}
	}
	return out
}

// is reports whether a member named key has the string value want.
func (o object) is(key, want string) bool {
	return slices.Contains(o.strings(key), want)
}

// MarshalJSON writes the members with keys in sorted order, repeated keys in their
// order.
func (o object) MarshalJSON() ([]byte, error) {
	sorted := slices.Clone(o)
	slices.SortStableFunc(sorted, func(a, b member) int { return strings.Compare(a.key, b.key) })
	buf := []byte{'{'}
	for i, m := range sorted {
		if i > 0 {
			buf = append(buf, ',')
		}
		key, err := marshal(m.key)
		if err != nil {
			return nil, err
		}
		val, err := marshal(m.val)
		if err != nil {
			return nil, err
		}
		buf = append(append(append(buf, key...), ':'), val...)
	}
	return append(buf, '}'), nil
}

// decodeTree decodes a valid JSON value (raw came from a Decoder, which bounds its
// nesting) into strings, json.Numbers, bools, nils, []any and objects.
func decodeTree(raw json.RawMessage) (any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	return decodeValue(d)
}

func decodeValue(d *json.Decoder) (any, error) {
	t, err := d.Token()
	if err != nil {
		return nil, err
	}
	switch t {
	case json.Delim('{'):
		o := object{}
		for d.More() {
			k, err := d.Token()
			if err != nil {
				return nil, err
			}
			key, _ := k.(string)
			v, err := decodeValue(d)
			if err != nil {
				return nil, err
			}
			o = append(o, member{key, v})
		}
		_, err := d.Token()
		return o, err
	case json.Delim('['):
		a := []any{}
		for d.More() {
			v, err := decodeValue(d)
			if err != nil {
				return nil, err
			}
			a = append(a, v)
		}
		_, err := d.Token()
		return a, err
	}
	return t, nil
}

// walkField calls visit on each text string of a top-level field, in a fixed order,
// storing what visit returns in its place, and returns the (possibly replaced) value.
func walkField(field string, v any, visit visitFunc) any {
	switch field {
	case "messages":
		for _, el := range asArray(v) {
			if msg, ok := el.(object); ok {
				walkMember(msg, "content", visit)
				// The arguments of the tool calls of chat assistant turns (and of a
				// legacy function_call).
				msg.walk("function_call", func(fn any) any {
					if fn, ok := fn.(object); ok {
						walkArguments(fn, visit)
					}
					return fn
				})
				msg.walk("tool_calls", func(v any) any {
					for _, el := range asArray(v) {
						if call, ok := el.(object); ok {
							call.walk("function", func(fn any) any {
								if fn, ok := fn.(object); ok {
									walkArguments(fn, visit)
								}
								return fn
							})
						}
					}
					return v
				})
				// Chat assistant turns carry thinking blocks back (thinking_blocks).
				msg.walk("thinking_blocks", func(v any) any {
					for _, el := range asArray(v) {
						if tb, ok := el.(object); ok {
							walkThinking(tb, visit)
						}
					}
					return v
				})
			}
		}
		return v
	case "choices":
		for _, el := range asArray(v) {
			choice, ok := el.(object)
			if !ok {
				continue
			}
			choice.walk("message", func(m any) any {
				if msg, ok := m.(object); ok {
					walkMember(msg, "content", visit)
				}
				return m
			})
			walkString(choice, "text", visit)
		}
		return v
	case "functions":
		// Chat's legacy function definitions.
		for _, el := range asArray(v) {
			if fn, ok := el.(object); ok {
				walkString(fn, "description", visit)
				fn.walk("parameters", func(v any) any { return walkDescriptions(v, visit) })
			}
		}
		return v
	case "tools":
		for _, el := range asArray(v) {
			tool, ok := el.(object)
			if !ok {
				continue
			}
			// Chat: {function: {description, parameters}}; Messages: {description,
			// input_schema}; Responses: {description, parameters}.
			walkString(tool, "description", visit)
			tool.walk("function", func(fn any) any {
				if fn, ok := fn.(object); ok {
					walkString(fn, "description", visit)
					fn.walk("parameters", func(v any) any { return walkDescriptions(v, visit) })
				}
				return fn
			})
			tool.walk("parameters", func(v any) any { return walkDescriptions(v, visit) })
			tool.walk("input_schema", func(v any) any { return walkDescriptions(v, visit) })
		}
		return v
	}
	return walkText(v, visit)
}

// walkArguments visits the strings of the JSON text in obj's arguments members (a tool
// call's), unescaped, and writes the JSON back when one changed; arguments that are not
// JSON are visited as they are.
func walkArguments(obj object, visit visitFunc) {
	obj.walk("arguments", func(v any) any {
		s, ok := v.(string)
		if !ok {
			return v
		}
		if !json.Valid([]byte(s)) {
			return visit(s, false)
		}
		tree, err := decodeTree(json.RawMessage(s))
		if err != nil {
			return visit(s, false)
		}
		changed := false
		tree = walkValues(tree, func(t string, joins bool) string {
			out := visit(t, joins)
			changed = changed || out != t
			return out
		})
		if !changed {
			return s
		}
		raw, err := marshal(tree)
		if err != nil {
			return visit(s, false)
		}
		return string(raw)
	})
}

// walkDescriptions visits the description strings anywhere in a JSON schema.
func walkDescriptions(v any, visit visitFunc) any {
	switch v := v.(type) {
	case []any:
		for _, el := range v {
			walkDescriptions(el, visit)
		}
	case object:
		for i := range v {
			if s, ok := v[i].val.(string); ok && strings.EqualFold(v[i].key, "description") {
				v[i].val = visit(s, false)
				continue
			}
			walkDescriptions(v[i].val, visit)
		}
	}
	return v
}

func asArray(v any) []any {
	a, _ := v.([]any)
	return a
}

// walkMember walks the text values of obj's members named key.
func walkMember(obj object, key string, visit visitFunc) {
	obj.walk(key, func(v any) any { return walkText(v, visit) })
}

// walkString visits obj's string members named key.
func walkString(obj object, key string, visit visitFunc) {
	obj.walk(key, func(v any) any {
		if s, ok := v.(string); ok {
			return visit(s, false)
		}
		return v
	})
}

// walkText walks a text value: a string, or an array of strings and of objects with
// text, content or output members.
func walkText(v any, visit visitFunc) any {
	switch v := v.(type) {
	case string:
		return visit(v, false)
	case []any:
		// The text parts of one content array are read as one text: a part whose
		// text comes right after another's continues it (joins).
		part := false
		for i, el := range v {
			switch el := el.(type) {
			case string:
				v[i] = visit(el, false)
				part = false
			case object:
				isPart := false
				el.walk("text", func(t any) any {
					if s, ok := t.(string); ok {
						t, isPart = visit(s, part && !isPart), true
					}
					return t
				})
				others := 0
				visit := func(s string, joins bool) string {
					others++
					return visit(s, joins)
				}
				walkMember(el, "content", visit)
				el.walk("output", func(v any) any { return walkStrings(v, visit) })
				// The tool calls a caller sends back: a Messages tool_use block's
				// input, a Responses function_call item's arguments (a
				// custom_tool_call's input).
				if el.is("type", "tool_use") {
					el.walk("input", func(v any) any { return walkValues(v, visit) })
				}
				if el.is("type", "function_call") {
					walkArguments(el, visit)
				}
				if el.is("type", "custom_tool_call") {
					walkString(el, "input", visit)
				}
				walkDocument(el, visit)
				walkThinking(el, visit)
				walkThinkingState(el, visit)
				part = isPart && others == 0
			default:
				part = false
			}
		}
	}
	return v
}

// walkValues is walkStrings that visits card-length integers too (13 to 19 digits, as
// their JSON text): a tool call's arguments are the model's words, a card number among
// them as a number too. Shorter numbers (timestamps, ids) are not read: a phone rule
// would take a 10-digit timestamp for a number to call. A number a rule changed
// becomes the changed text, a string.
func walkValues(v any, visit visitFunc) any { return walkJSON(v, visit, true) }

// walkStrings visits every string in v: a tool's output (a Responses
// function_call_output's) goes upstream as a string, the texts of an array of parts,
// or the JSON text of anything else.
func walkStrings(v any, visit visitFunc) any { return walkJSON(v, visit, false) }

// walkJSON visits every string in v and, with numbers, its card-length integers.
func walkJSON(v any, visit visitFunc, numbers bool) any {
	switch v := v.(type) {
	case string:
		return visit(v, false)
	case json.Number:
		if !numbers {
			return v
		}
		digits := strings.TrimPrefix(string(v), "-")
		if len(digits) < 13 || len(digits) > 19 || strings.Trim(digits, "0123456789") != "" {
			return v
		}
		if out := visit(digits, false); out != digits {
			return out
		}
	case []any:
		for i := range v {
			v[i] = walkJSON(v[i], visit, numbers)
		}
	case object:
		for i := range v {
			v[i].val = walkJSON(v[i].val, visit, numbers)
		}
	}
	return v
}

// walkThinking visits the text of a thinking block a caller sends back (a Messages
// content block, a chat thinking_blocks element). A block whose text a rule changed
// loses its signature: the gateway cannot sign, Anthropic refuses a signed block whose
// text changed, and the translators drop unsigned blocks on their way to Anthropic. A
// redacted_thinking block's data is Anthropic's encrypted text and is not checked.
func walkThinking(el object, visit visitFunc) {
	if !el.is("type", "thinking") {
		return
	}
	changed := false
	el.walk("thinking", func(v any) any {
		s, ok := v.(string)
		if !ok {
			return v
		}
		out := visit(s, false)
		changed = changed || out != s
		return out
	})
	if changed {
		el.walk("signature", func(any) any { return "" })
	}
}

// thinkingStatePrefix starts the encrypted_content the gateway gives the Responses
// reasoning items it makes of Anthropic thinking blocks: the block as base64url JSON
// (see the llm package), which the caller sends back and the gateway restores into a
// thinking block for Anthropic.
const thinkingStatePrefix = "gatehouse.thinking.v1."

// walkThinkingState visits the thinking text in the encrypted_content of a Responses
// reasoning item. A state whose text a rule changed is emptied, dropping the block:
// the gateway cannot sign the changed text, and Anthropic would refuse it.
func walkThinkingState(el object, visit visitFunc) {
	el.walk("encrypted_content", func(v any) any {
		s, ok := v.(string)
		if !ok {
			return v
		}
		rest, ours := strings.CutPrefix(s, thinkingStatePrefix)
		if !ours {
			return v
		}
		raw, err := base64.RawURLEncoding.DecodeString(rest)
		if err != nil || !json.Valid(raw) {
			return v // the translator refuses it
		}
		tb, err := decodeTree(raw)
		if err != nil {
			return v
		}
		obj, ok := tb.(object)
		if !ok {
			return v
		}
		changed := false
		walkString(obj, "thinking", func(t string, joins bool) string {
			out := visit(t, joins)
			changed = changed || out != t
			return out
		})
		if changed {
			return ""
		}
		return v
	})
}

// walkDocument visits the texts of a document content part: an Anthropic document
// block's text or content source and its context, or a text file in base64 (chat
// `file` parts, Responses input_file).
func walkDocument(el object, visit visitFunc) {
	if el.is("type", "document") {
		// Repeated sources merge into one: a type in one applies to the data of all.
		var types, mediaTypes []string
		el.walk("source", func(v any) any {
			if src, ok := v.(object); ok {
				types = append(types, src.strings("type")...)
				mediaTypes = append(mediaTypes, src.strings("media_type")...)
			}
			return v
		})
		el.walk("source", func(v any) any {
			src, ok := v.(object)
			if !ok {
				return v
			}
			if slices.Contains(types, "text") {
				walkString(src, "data", visit)
			}
			if slices.Contains(types, "content") {
				walkMember(src, "content", visit)
			}
			if slices.Contains(types, "base64") && slices.ContainsFunc(mediaTypes, textual) {
				// Text in base64: other upstreams get it as a file (Gemini as
				// inline data).
				src.walk("data", func(v any) any {
					if data, ok := v.(string); ok {
						return visitBase64(data, visit)
					}
					return v
				})
			}
			return v
		})
		walkString(el, "context", visit)
	}
	el.walk("file", func(v any) any {
		if f, ok := v.(object); ok {
			walkFileData(f, visit)
		}
		return v
	})
	walkFileData(el, visit)
}

// walkFileData visits the text of a file in base64 (obj's file_data: a data URL, or
// bare base64 whose filename tells a text type) and writes back what visit returns,
// encoded again; a file that is not text is left alone.
func walkFileData(obj object, visit visitFunc) {
	textName := slices.ContainsFunc(obj.strings("filename"), func(name string) bool {
		switch strings.ToLower(path.Ext(name)) {
		case ".txt", ".text", ".md":
			return true
		}
		return false
	})
	obj.walk("file_data", func(v any) any {
		fd, ok := v.(string)
		if !ok {
			return v
		}
		return visitFileData(fd, textName, visit)
	})
}

func visitFileData(fd string, textName bool, visit visitFunc) string {
	prefix, data := "", fd
	if rest, ok := strings.CutPrefix(fd, "data:"); ok {
		meta, payload, ok := strings.Cut(rest, ",")
		mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isBase64 {
			return fd
		}
		if !textual(mediaType) {
			return fd
		}
		prefix, data = fd[:len(fd)-len(payload)], payload
	} else if !textName {
		return fd
	}
	if out := visitBase64(data, visit); out != data {
		return prefix + out
	}
	return fd
}

// textual reports whether a media type is text: text/*, JSON, XML (+json and +xml
// too). Parameters and case do not matter.
func textual(mediaType string) bool {
	mt, _, err := mime.ParseMediaType(mediaType)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(mediaType))
	}
	return strings.HasPrefix(mt, "text/") || mt == "application/json" || mt == "application/xml" ||
		strings.HasSuffix(mt, "+json") || strings.HasSuffix(mt, "+xml")
}

// visitBase64 visits the text that data encodes and returns data, or what visit
// returned encoded again when it changed the text. Providers differ in how strictly
// they read base64: what any of them would read (standard or URL-safe alphabet, padded
// or not) is checked.
func visitBase64(data string, visit visitFunc) string {
	unpadded := strings.TrimRight(data, "=")
	var text []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if text, err = enc.DecodeString(unpadded); err == nil {
			break
		}
	}
	if err != nil {
		return data
	}
	if out := visit(string(text), false); out != string(text) {
		return base64.StdEncoding.EncodeToString([]byte(out))
	}
	return data
}

// marshal encodes v without escaping <, > and & (the body is not HTML).
func marshal(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// writeMembers writes a JSON object from raw members, keys in sorted order, repeated
// keys in their order.
func writeMembers(members []rawMember) []byte {
	size := 2
	for _, m := range members {
		size += len(m.key) + len(m.raw) + 4
	}
	slices.SortStableFunc(members, func(a, b rawMember) int { return strings.Compare(a.key, b.key) })
	buf := make([]byte, 0, size)
	buf = append(buf, '{')
	for i, m := range members {
		if i > 0 {
			buf = append(buf, ',')
		}
		key, _ := marshal(m.key) // a string always encodes
		buf = append(buf, key...)
		buf = append(buf, ':')
		buf = append(buf, m.raw...)
	}
	return append(buf, '}')
}

// writeObject writes a JSON object from raw members, keys in sorted order.
func writeObject(fields map[string]json.RawMessage) []byte {
	keys := make([]string, 0, len(fields))
	size := 2
	for k, v := range fields {
		keys = append(keys, k)
		size += len(k) + len(v) + 4
	}
	slices.Sort(keys)
	buf := make([]byte, 0, size)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		key, _ := marshal(k) // a string always encodes
		buf = append(buf, key...)
		buf = append(buf, ':')
		buf = append(buf, fields[k]...)
	}
	return append(buf, '}')
}
