package llm

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
)

// InvalidRequestError describes why a request body was refused. Its message is written
// for the caller and safe to show.
type InvalidRequestError struct {
	Param   string
	Message string
}

func (e *InvalidRequestError) Error() string { return e.Message }

// ChatRequest is a parsed chat completions body. Only the fields the gateway acts on are
// interpreted; every other field is passed upstream untouched.
type ChatRequest struct {
	Model  string
	Stream bool
	// IncludeUsage says the caller asked for the usage chunk of a stream.
	IncludeUsage bool

	fields        map[string]json.RawMessage
	streamOptions map[string]json.RawMessage
}

// ParseChatRequest parses a chat completions body. It needs a JSON object with a
// non-empty string `model`; `stream` and `stream_options.include_usage` must be booleans
// when present.
func ParseChatRequest(body []byte) (*ChatRequest, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, &InvalidRequestError{Message: "The request body must be a JSON object."}
	}
	req := &ChatRequest{fields: fields}
	raw, ok := fields["model"]
	if !ok || json.Unmarshal(raw, &req.Model) != nil || req.Model == "" {
		return nil, &InvalidRequestError{Param: "model", Message: "`model` is required and must be a non-empty string."}
	}
	if raw, ok := fields["stream"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &req.Stream); err != nil {
			return nil, &InvalidRequestError{Param: "stream", Message: "`stream` must be a boolean."}
		}
	}
	if raw, ok := fields["stream_options"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &req.streamOptions); err != nil || req.streamOptions == nil {
			return nil, &InvalidRequestError{Param: "stream_options", Message: "`stream_options` must be an object."}
		}
		if raw, ok := req.streamOptions["include_usage"]; ok && !isNull(raw) {
			if err := json.Unmarshal(raw, &req.IncludeUsage); err != nil {
				return nil, &InvalidRequestError{Param: "stream_options.include_usage", Message: "`stream_options.include_usage` must be a boolean."}
			}
		}
	}
	return req, nil
}

func isNull(raw json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(raw), []byte("null")) }

// UpstreamBody renders the body sent to the provider: `model` replaced by the upstream
// model id and, for streams, `stream_options.include_usage` forced on so the gateway can
// meter the request. Keys are written in sorted order.
func (r *ChatRequest) UpstreamBody(upstreamModel string) []byte {
	fields := r.fields
	override := map[string]json.RawMessage{"model": mustMarshal(upstreamModel)}
	if r.Stream {
		opts := make(map[string]json.RawMessage, len(r.streamOptions)+1)
		maps.Copy(opts, r.streamOptions)
		opts["include_usage"] = json.RawMessage("true")
		override["stream_options"] = writeObject(opts, nil)
	}
	return writeObject(fields, override)
}

// writeObject writes a JSON object from raw members, with override taking precedence.
// Raw values came from json.Unmarshal, so they are valid JSON and are copied as they are.
func writeObject(fields, override map[string]json.RawMessage) []byte {
	size := 2
	keys := make([]string, 0, len(fields)+len(override))
	for k, v := range fields {
		keys = append(keys, k)
		size += len(k) + len(v) + 4
	}
	for k, v := range override {
		if _, ok := fields[k]; !ok {
			keys = append(keys, k)
		}
		size += len(k) + len(v) + 4
	}
	slices.Sort(keys)
	buf := make([]byte, 0, size)
	buf = append(buf, '{')
	for i, k := range keys {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, mustMarshal(k)...)
		buf = append(buf, ':')
		if v, ok := override[k]; ok {
			buf = append(buf, v...)
		} else {
			buf = append(buf, fields[k]...)
		}
	}
	return append(buf, '}')
}

func mustMarshal(s string) json.RawMessage {
	// Marshalling a string cannot fail.
	b, _ := json.Marshal(s)
	return b
}
