package signalling

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"
)

// TwiML, the XML a disaster-recovery URL answers with (drtwiml.go): a
// <Response> of verbs, each with attributes, text and nested nouns
// (<Dial>'s <Number> and <Sip>). The parser keeps the document's shape
// and no more; what a verb means is the executor's business.

// TwiML limits: a document larger, deeper or longer than a DR answer
// ever needs is refused as bad TwiML rather than held.
const (
	maxTwiMLBytes = 64 << 10
	maxTwiMLVerbs = 100
	maxTwiMLDepth = 4 // Response > Dial > Number, with room for one more
	maxTwiMLText  = 4096
)

// twimlVerb is one element: its name, attributes (the last of a repeated
// one wins), trimmed text and child elements.
type twimlVerb struct {
	Name     string
	Attrs    map[string]string
	Text     string
	Children []twimlVerb
}

// attr is the verb's attribute name ("" when absent).
func (v twimlVerb) attr(name string) string { return v.Attrs[name] }

// parseTwiML reads a TwiML document: one <Response> root holding verbs.
// It never panics; every failure wraps ErrBadTwiML.
func parseTwiML(b []byte) ([]twimlVerb, error) {
	if len(b) > maxTwiMLBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrBadTwiML, len(b), maxTwiMLBytes)
	}
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	d.Entity = xml.HTMLEntity
	var root *twimlVerb
	var stack []*twimlVerb
	count := 0
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrBadTwiML, err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if root != nil && len(stack) == 0 {
				return nil, fmt.Errorf("%w: content after </Response>", ErrBadTwiML)
			}
			if len(stack) >= maxTwiMLDepth {
				return nil, fmt.Errorf("%w: nested deeper than %d", ErrBadTwiML, maxTwiMLDepth)
			}
			if count++; count > maxTwiMLVerbs {
				return nil, fmt.Errorf("%w: more than %d elements", ErrBadTwiML, maxTwiMLVerbs)
			}
			v := twimlVerb{Name: t.Name.Local, Attrs: map[string]string{}}
			for _, a := range t.Attr {
				v.Attrs[a.Name.Local] = a.Value
			}
			if len(stack) == 0 {
				if v.Name != "Response" {
					return nil, fmt.Errorf("%w: root element <%s>, want <Response>", ErrBadTwiML, v.Name)
				}
				root = &v
				stack = append(stack, root)
				continue
			}
			parent := stack[len(stack)-1]
			parent.Children = append(parent.Children, v)
			stack = append(stack, &parent.Children[len(parent.Children)-1])
		case xml.EndElement:
			if len(stack) == 0 { // the decoder checks nesting; kept as a guard
				return nil, fmt.Errorf("%w: unbalanced </%s>", ErrBadTwiML, t.Name.Local)
			}
			top := stack[len(stack)-1]
			top.Text = strings.TrimSpace(top.Text)
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, fmt.Errorf("%w: text outside <Response>", ErrBadTwiML)
				}
				continue
			}
			top := stack[len(stack)-1]
			if len(top.Text)+len(t) > maxTwiMLText {
				return nil, fmt.Errorf("%w: text longer than %d", ErrBadTwiML, maxTwiMLText)
			}
			top.Text += string(t)
		}
	}
	if root == nil {
		return nil, fmt.Errorf("%w: no <Response>", ErrBadTwiML)
	}
	if len(stack) != 0 {
		return nil, fmt.Errorf("%w: unterminated <%s>", ErrBadTwiML, stack[len(stack)-1].Name)
	}
	return root.Children, nil
}
