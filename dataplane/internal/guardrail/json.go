package guardrail

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
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
// (string) members, are text; so are documents (see walkDocument): the text of an
// Anthropic document block (a text source's data, a content source's content, its
// context) and the decoded text of a text/* file in base64 (a chat `file` part's
// file_data, a Responses input_file's). Other members (images, PDFs and other binary
// files, tool call arguments, ids, roles) are not checked: a PDF's contents are not
// inspected.
var (
	// Chat completions and Anthropic messages (messages[*].content, system), the
	// Responses API (input, instructions), legacy completions and embeddings (prompt,
	// input).
	requestTextFields = []string{"messages", "input", "system", "instructions", "prompt"}
	// Chat completions (choices[*].message.content, choices[*].text), Anthropic
	// (content[*].text) and the Responses API (output[*].content[*].text).
	responseTextFields = []string{"choices", "content", "output"}
)

// CheckRequestJSON applies the request rules to the text of an LLM request body:
// messages[*].content (a string or an array of parts, documents' text included),
// system, input, instructions and prompt — see requestTextFields. Each string is
// checked on its own; a redacted text file is encoded again in base64. It returns
// ErrNotJSONObject when body is not a JSON object.
func (p *Policy) CheckRequestJSON(body []byte) (BodyOutcome, error) {
	if !p.HasRequestRules() {
		return BodyOutcome{Body: body}, nil
	}
	return checkJSON(p.request, body, requestTextFields)
}

// CheckResponseJSON applies the response rules to the text of a complete (not
// streamed) LLM response body: choices[*].message.content, choices[*].text, content and
// output — see responseTextFields.
func (p *Policy) CheckResponseJSON(body []byte) (BodyOutcome, error) {
	if !p.HasResponseRules() {
		return BodyOutcome{Body: body}, nil
	}
	return checkJSON(p.response, body, responseTextFields)
}

func checkJSON(set *ruleSet, body []byte, fields []string) (BodyOutcome, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil || top == nil {
		return BodyOutcome{}, ErrNotJSONObject
	}
	trees := make(map[string]any, len(fields))
	var texts []string
	collect := func(s string) string {
		texts = append(texts, s)
		return s
	}
	for _, f := range fields {
		raw, ok := top[f]
		if !ok {
			continue
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			return BodyOutcome{}, ErrNotJSONObject
		}
		trees[f] = v
		walkField(f, v, collect)
	}
	o := set.check(texts)
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
	replace := func(string) string {
		next++
		return o.Texts[next-1]
	}
	for _, f := range fields {
		v, ok := trees[f]
		if !ok {
			continue
		}
		v = walkField(f, v, replace)
		raw, err := marshal(v)
		if err != nil {
			return BodyOutcome{}, err
		}
		top[f] = raw
	}
	out.Body, out.Changed = writeObject(top), true
	return out, nil
}

// walkField calls visit on each text string of a top-level field, in a fixed order,
// storing what visit returns in its place, and returns the (possibly replaced) value.
func walkField(field string, v any, visit func(string) string) any {
	switch field {
	case "messages":
		for _, el := range asArray(v) {
			if msg, ok := el.(map[string]any); ok {
				walkMember(msg, "content", visit)
			}
		}
		return v
	case "choices":
		for _, el := range asArray(v) {
			choice, ok := el.(map[string]any)
			if !ok {
				continue
			}
			if msg, ok := choice["message"].(map[string]any); ok {
				walkMember(msg, "content", visit)
			}
			if _, ok := choice["text"].(string); ok {
				walkMember(choice, "text", visit)
			}
		}
		return v
	}
	return walkText(v, visit)
}

func asArray(v any) []any {
	a, _ := v.([]any)
	return a
}

func walkMember(obj map[string]any, key string, visit func(string) string) {
	if v, ok := obj[key]; ok {
		obj[key] = walkText(v, visit)
	}
}

// walkText walks a text value: a string, or an array of strings and of objects with
// text, content or output members.
func walkText(v any, visit func(string) string) any {
	switch v := v.(type) {
	case string:
		return visit(v)
	case []any:
		for i, el := range v {
			switch el := el.(type) {
			case string:
				v[i] = visit(el)
			case map[string]any:
				if _, ok := el["text"].(string); ok {
					walkMember(el, "text", visit)
				}
				walkMember(el, "content", visit)
				if _, ok := el["output"].(string); ok {
					walkMember(el, "output", visit)
				}
				walkDocument(el, visit)
			}
		}
	}
	return v
}

// walkDocument visits the texts of a document content part: an Anthropic document
// block's text or content source and its context, or a text file in base64 (chat
// `file` parts, Responses input_file).
func walkDocument(el map[string]any, visit func(string) string) {
	if el["type"] == "document" {
		if src, ok := el["source"].(map[string]any); ok {
			switch src["type"] {
			case "text":
				if _, ok := src["data"].(string); ok {
					walkMember(src, "data", visit)
				}
			case "content":
				walkMember(src, "content", visit)
			}
		}
		if _, ok := el["context"].(string); ok {
			walkMember(el, "context", visit)
		}
	}
	if f, ok := el["file"].(map[string]any); ok {
		walkFileData(f, visit)
	}
	walkFileData(el, visit)
}

// walkFileData visits the text of a file in base64 (obj's file_data: a data URL, or
// bare base64 whose filename tells a text type) and writes back what visit returns,
// encoded again; a file that is not text is left alone.
func walkFileData(obj map[string]any, visit func(string) string) {
	fd, ok := obj["file_data"].(string)
	if !ok {
		return
	}
	prefix, data := "", fd
	if rest, ok := strings.CutPrefix(fd, "data:"); ok {
		meta, payload, ok := strings.Cut(rest, ",")
		mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
		if !ok || !isBase64 {
			return
		}
		if mt, _, err := mime.ParseMediaType(mediaType); err == nil {
			mediaType = mt
		}
		if !strings.HasPrefix(mediaType, "text/") {
			return
		}
		prefix, data = fd[:len(fd)-len(payload)], payload
	} else {
		name, _ := obj["filename"].(string)
		switch strings.ToLower(path.Ext(name)) {
		case ".txt", ".text", ".md":
		default:
			return
		}
	}
	text, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		// Providers differ in how strictly they read base64: what any of them
		// would read is checked.
		if text, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(data, "=")); err != nil {
			return
		}
	}
	if out := visit(string(text)); out != string(text) {
		obj["file_data"] = prefix + base64.StdEncoding.EncodeToString([]byte(out))
	}
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
