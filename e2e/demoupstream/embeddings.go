package demoupstream

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"unicode/utf8"
)

const (
	// defaultDimensions is the vector size when the request sets none.
	defaultDimensions = 8
	maxDimensions     = 4096
	maxInputs         = 2048
)

type embeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	EncodingFormat string          `json:"encoding_format"`
	Dimensions     int             `json:"dimensions"`
}

func (s *server) embeddings(w http.ResponseWriter, r *http.Request) error {
	sc := s.pool.Get().(*scratch)
	defer s.release(sc)
	if err := readBody(w, r, sc); err != nil {
		return err
	}
	var req embeddingsRequest
	if err := decodeJSON(sc.in.Bytes(), &req); err != nil {
		return err
	}
	if req.Model == "" {
		return badRequest("You must provide a model parameter.", "model", nil)
	}
	inputs, err := embeddingInputs(req.Input)
	if err != nil {
		return err
	}
	dims := req.Dimensions
	switch {
	case dims == 0:
		dims = defaultDimensions
	case dims < 0 || dims > maxDimensions:
		return badRequest("dimensions must be between 1 and "+strconv.Itoa(maxDimensions)+".", "dimensions", nil)
	}
	var b64 bool
	switch req.EncodingFormat {
	case "", "float":
	case "base64":
		b64 = true
	default:
		return badRequest("encoding_format must be 'float' or 'base64'.", "encoding_format", nil)
	}

	b := append(sc.out[:0], `{"object":"list","data":[`...)
	vec := make([]float32, dims)
	var raw []byte
	if b64 {
		raw = make([]byte, 4*dims)
	}
	tokens := 0
	for i, in := range inputs {
		tokens += (utf8.RuneCountInString(in) + charsPerToken - 1) / charsPerToken
		embed(vec, in)
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"object":"embedding","index":`...)
		b = strconv.AppendInt(b, int64(i), 10)
		b = append(b, `,"embedding":`...)
		if b64 {
			for j, v := range vec {
				binary.LittleEndian.PutUint32(raw[4*j:], math.Float32bits(v))
			}
			b = append(b, '"')
			b = base64.StdEncoding.AppendEncode(b, raw)
			b = append(b, '"')
		} else {
			b = append(b, '[')
			for j, v := range vec {
				if j > 0 {
					b = append(b, ',')
				}
				b = strconv.AppendFloat(b, float64(v), 'g', -1, 32)
			}
			b = append(b, ']')
		}
		b = append(b, '}')
	}
	b = append(b, `],"model":`...)
	b = appendString(b, req.Model)
	b = append(b, `,"usage":{"prompt_tokens":`...)
	b = strconv.AppendInt(b, int64(tokens), 10)
	b = append(b, `,"total_tokens":`...)
	b = strconv.AppendInt(b, int64(tokens), 10)
	b = append(b, "}}"...)
	sc.out = b
	return writeBody(w, http.StatusOK, s.hdrJSON, b)
}

// embeddingInputs accepts a string or a non-empty array of strings, none of
// them empty. Token-array inputs are not supported.
func embeddingInputs(raw json.RawMessage) ([]string, error) {
	const msg = "'input' must be a non-empty string or a non-empty array of non-empty strings."
	var inputs []string
	switch {
	case len(raw) > 0 && raw[0] == '"':
		var one string
		if err := json.Unmarshal(raw, &one); err != nil {
			return nil, badRequest(msg, "input", err)
		}
		inputs = []string{one}
	case len(raw) > 0 && raw[0] == '[':
		if err := json.Unmarshal(raw, &inputs); err != nil {
			return nil, badRequest(msg, "input", err)
		}
	}
	if len(inputs) == 0 || len(inputs) > maxInputs {
		return nil, badRequest(msg, "input", nil)
	}
	for _, in := range inputs {
		if in == "" {
			return nil, badRequest(msg, "input", nil)
		}
	}
	return inputs, nil
}

// embed fills vec with a unit vector derived from sha256(s): each block of
// eight components is read from a digest, the next digest being the sha256
// of the previous one.
func embed(vec []float32, s string) {
	sum := sha256.Sum256([]byte(s))
	var norm float64
	for i := range vec {
		if i > 0 && i%8 == 0 {
			sum = sha256.Sum256(sum[:])
		}
		v := float64(int32(binary.BigEndian.Uint32(sum[(i%8)*4:]))) / (1 << 31)
		vec[i] = float32(v)
		norm += v * v
	}
	if norm == 0 {
		return
	}
	inv := 1 / math.Sqrt(norm)
	for i := range vec {
		vec[i] = float32(float64(vec[i]) * inv)
	}
}
