package usage

import (
	"strings"
	"unicode/utf8"

	gatehousev1 "github.com/gatehouse-dev/gatehouse/proto/gatehouse/v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// marshalBatch encodes b. Protobuf refuses strings that are not valid UTF-8, and one
// such string would cost every event in the batch, so a batch that fails to encode has
// its invalid strings repaired in place (each bad byte sequence becomes U+FFFD) and is
// encoded again. repaired is how many strings were changed.
func marshalBatch(b *gatehousev1.UsageBatch) (data []byte, repaired int, err error) {
	data, err = proto.Marshal(b)
	if err == nil {
		return data, 0, nil
	}
	repaired = repairStrings(b.ProtoReflect())
	if repaired == 0 {
		return nil, 0, err
	}
	data, err = proto.Marshal(b)
	return data, repaired, err
}

// repairStrings makes every string field of m, nested messages and lists included,
// valid UTF-8 and returns how many it changed.
func repairStrings(m protoreflect.Message) int {
	n := 0
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				switch fd.Kind() {
				case protoreflect.StringKind:
					if s := l.Get(i).String(); !utf8.ValidString(s) {
						l.Set(i, protoreflect.ValueOfString(strings.ToValidUTF8(s, "\uFFFD")))
						n++
					}
				case protoreflect.MessageKind, protoreflect.GroupKind:
					n += repairStrings(l.Get(i).Message())
				}
			}
		case fd.IsMap():
			// No map fields in the usage messages; a key could not be repaired in place.
		case fd.Kind() == protoreflect.StringKind:
			if s := v.String(); !utf8.ValidString(s) {
				m.Set(fd, protoreflect.ValueOfString(strings.ToValidUTF8(s, "\uFFFD")))
				n++
			}
		case fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind:
			n += repairStrings(v.Message())
		}
		return true
	})
	return n
}
