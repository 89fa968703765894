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
	var tp twimlParser
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
			if err := tp.start(t); err != nil {
				return nil, err
			}
		case xml.EndElement:
			if len(tp.stack) == 0 { // the decoder checks nesting; kept as a guard
				return nil, fmt.Errorf("%w: unbalanced </%s>", ErrBadTwiML, t.Name.Local)
			}
			top := tp.stack[len(tp.stack)-1]
			top.Text = strings.TrimSpace(top.Text)
			tp.stack = tp.stack[:len(tp.stack)-1]
		case xml.CharData:
			if len(tp.stack) == 0 {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, fmt.Errorf("%w: text outside <Response>", ErrBadTwiML)
				}
				continue
			}
			top := tp.stack[len(tp.stack)-1]
			if len(top.Text)+len(t) > maxTwiMLText {
				return nil, fmt.Errorf("%w: text longer than %d", ErrBadTwiML, maxTwiMLText)
			}
			top.Text += string(t)
		}
	}
	if tp.root == nil {
		return nil, fmt.Errorf("%w: no <Response>", ErrBadTwiML)
	}
	if len(tp.stack) != 0 {
		return nil, fmt.Errorf("%w: unterminated <%s>", ErrBadTwiML, tp.stack[len(tp.stack)-1].Name)
	}
	return tp.root.Children, nil
}

// twimlParser is the document being read: its root, the open elements
// (each pointer stays valid while open, since only the innermost one
// gets children) and the elements counted so far.
type twimlParser struct {
	root  *twimlVerb
	stack []*twimlVerb
	count int
}

// start opens an element: the <Response> root, or a child of the
// innermost open element.
func (tp *twimlParser) start(t xml.StartElement) error {
	if tp.root != nil && len(tp.stack) == 0 {
		return fmt.Errorf("%w: content after </Response>", ErrBadTwiML)
	}
	if len(tp.stack) >= maxTwiMLDepth {
		return fmt.Errorf("%w: nested deeper than %d", ErrBadTwiML, maxTwiMLDepth)
	}
	if tp.count++; tp.count > maxTwiMLVerbs {
		return fmt.Errorf("%w: more than %d elements", ErrBadTwiML, maxTwiMLVerbs)
	}
	v := twimlVerb{Name: t.Name.Local, Attrs: map[string]string{}}
	for _, a := range t.Attr {
		v.Attrs[a.Name.Local] = a.Value
	}
	if len(tp.stack) == 0 {
		if v.Name != "Response" {
			return fmt.Errorf("%w: root element <%s>, want <Response>", ErrBadTwiML, v.Name)
		}
		tp.root = &v
		tp.stack = append(tp.stack, tp.root)
		return nil
	}
	parent := tp.stack[len(tp.stack)-1]
	parent.Children = append(parent.Children, v)
	tp.stack = append(tp.stack, &parent.Children[len(parent.Children)-1])
	return nil
}
