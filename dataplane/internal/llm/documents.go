package llm

import (
	"encoding/base64"
	"fmt"
	"mime"
	"path"
	"strings"
	"unicode/utf8"
)

// Documents (PDF, plain text) between the formats. A chat `file` part carries one
// inline as a base64 data URL (file_data) or names a file uploaded to OpenAI
// (file_id); an Anthropic `document` block carries one as base64 data, as text, by
// URL or as a file uploaded to Anthropic; Gemini takes inline data of any type. A
// stateless gateway cannot read a file uploaded to one provider for another, and chat
// completions take PDFs only, inline or by id: what a target cannot carry is refused
// with a 400 naming the parameter, never dropped, when no other deployment or
// fallback of the model can carry it (see errCannotCarry).

// fileRef is the `file` of a chat `file` content part.
type fileRef struct {
	FileData string `json:"file_data,omitempty"`
	FileID   string `json:"file_id,omitempty"`
	Filename string `json:"filename,omitempty"`
}

// Media types the translations name.
const (
	mediaPDF  = "application/pdf"
	mediaText = "text/plain"
)

// parseDataURL splits a base64 data URL (data:<media type>;base64,<data>).
func parseDataURL(u string) (mediaType, data string, ok bool) {
	rest, ok := strings.CutPrefix(u, "data:")
	if !ok {
		return "", "", false
	}
	meta, data, ok := strings.Cut(rest, ",")
	mediaType, isBase64 := strings.CutSuffix(meta, ";base64")
	if !ok || !isBase64 || mediaType == "" {
		return "", "", false
	}
	return mediaType, data, true
}

// inlineFile reads the document of a chat `file` part, which is param: its media
// type (without parameters) and base64 data. A file_id is refused: only OpenAI can
// read it. file_data is a data URL, or bare base64 whose type the filename tells.
func inlineFile(f *fileRef, param string) (mediaType, data string, err error) {
	switch {
	case f == nil || f.FileData == "" && f.FileID == "":
		return "", "", invalidf(param, "A `file` part needs `file.file_data` (a base64 data URL).")
	case f.FileData == "":
		return "", "", cannotCarry(invalidf(param+".file_id", "`file_id` names a file uploaded to OpenAI, which this model's provider cannot read. Send the document inline as `file_data` (data:application/pdf;base64,...)."))
	}
	mediaType, data, ok := parseDataURL(f.FileData)
	if !ok {
		if strings.HasPrefix(f.FileData, "data:") {
			return "", "", invalidf(param+".file_data", "`file_data` must look like data:<media type>;base64,<data>.")
		}
		mediaType, data = documentTypes[strings.ToLower(path.Ext(f.Filename))], f.FileData
		if mediaType == "" {
			return "", "", invalidf(param+".file_data", "`file_data` must be a data URL (data:<media type>;base64,<data>), or a `filename` must tell its type.")
		}
	}
	if mt, _, err := mime.ParseMediaType(mediaType); err == nil {
		mediaType = mt
	}
	return mediaType, data, nil
}

// anthropicDocument translates a chat `file` part (param) into a document block:
// PDFs as base64, plain text as text; the filename becomes the title.
func anthropicDocument(f *fileRef, param string) (anthropicBlock, error) {
	mediaType, data, err := inlineFile(f, param)
	if err != nil {
		return anthropicBlock{}, err
	}
	doc := anthropicBlock{Type: "document", Title: f.Filename}
	switch mediaType {
	case mediaPDF:
		doc.Source = &anthropicSource{Type: "base64", MediaType: mediaPDF, Data: data}
	case mediaText:
		text, err := base64.StdEncoding.DecodeString(data)
		if err != nil || !utf8.Valid(text) {
			return anthropicBlock{}, invalidf(param+".file_data", "A text/plain `file_data` must be base64 UTF-8 text.")
		}
		doc.Source = &anthropicSource{Type: "text", MediaType: mediaText, Data: string(text)}
	default:
		return anthropicBlock{}, cannotCarry(invalidf(param+".file_data", "This model's provider (Anthropic) reads PDF and plain-text documents, not %s.", mediaType))
	}
	return doc, nil
}

// geminiDocument translates a chat `file` part (param) into inline data.
func geminiDocument(f *fileRef, param string) (geminiPart, error) {
	mediaType, data, err := inlineFile(f, param)
	if err != nil {
		return geminiPart{}, err
	}
	return geminiPart{InlineData: &geminiBlob{MimeType: mediaType, Data: data}}, nil
}

// chatDocument translates a Messages document block (param) into chat content: a
// `file` part for base64 data, the text for text and content sources (chat
// completions take no text files). Documents by URL or uploaded to Anthropic cannot
// travel: the refusal is returned apart, for the upstreams that need the chat form.
func chatDocument(b *anthropicBlock, param string) (contentPart, *InvalidRequestError) {
	src := b.Source
	switch src.Type {
	case "base64":
		name := b.Title
		if name == "" {
			name = "document" + fileExtension(src.MediaType)
		}
		return contentPart{Type: "file", File: &fileRef{FileData: "data:" + src.MediaType + ";base64," + src.Data, Filename: name}}, nil
	case "text":
		return contentPart{Type: "text", Text: src.Data}, nil
	case "content":
		blocks, err := anthropicBlocks(src.Content)
		if err != nil {
			return contentPart{}, invalidf(param+".content", "%s.content: must be a string or an array of content blocks.", param)
		}
		return contentPart{Type: "text", Text: blocksText(blocks, "")}, nil
	case "url":
		return contentPart{}, invalidf(param+".url", "%s: this model's provider cannot read documents by URL. Send the document as base64 data (source type \"base64\").", param)
	case "file":
		return contentPart{}, invalidf(param+".file_id", "%s: `file_id` names a file uploaded to Anthropic, which this model's provider cannot read. Send the document as base64 data (source type \"base64\").", param)
	}
	return contentPart{}, invalidf(param+".type", "%s: documents of source type %q are not supported by this gateway.", param, src.Type)
}

// documentTypes are the media types of document file extensions (a fixed table: the
// system's varies from machine to machine).
var documentTypes = map[string]string{".pdf": mediaPDF, ".txt": mediaText, ".text": mediaText, ".md": mediaText}

// fileExtension is the usual extension of a document media type ("" when unknown).
func fileExtension(mediaType string) string {
	switch mediaType {
	case mediaPDF:
		return ".pdf"
	case mediaText:
		return ".txt"
	}
	return ""
}

// documentParam names content part j of message i in a chat request.
func documentParam(i, j int) string { return fmt.Sprintf("messages[%d].content[%d].file", i, j) }
