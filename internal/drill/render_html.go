package drill

import (
	"bytes"
	"fmt"
	"html"
	"strings"
)

// HTML renders the report as one self-contained page (inline CSS, no
// external resources, no JavaScript): a PASSED/FAILED banner, an SVG
// timeline of the load with phases and events, then the same sections as
// Markdown. Every piece of text from the report is HTML-escaped.
func (r *Report) HTML() []byte {
	var b bytes.Buffer
	title := "Drill " + r.Scenario + ": " + verdict(r.Passed)
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	fmt.Fprintf(&b, "<title>%s</title>\n<style>%s</style>\n</head>\n<body>\n", htmlEsc(title), pageCSS)
	class := "failed"
	if r.Passed {
		class = "passed"
	}
	fmt.Fprintf(&b, "<header class=\"banner %s\"><span class=\"verdict\">%s</span> <h1>Drill %s</h1></header>\n",
		class, verdict(r.Passed), htmlEsc(r.Scenario))
	b.WriteString("<section id=\"timeline\"><h2>Timeline</h2>\n<figure>\n")
	b.Write(r.timelineSVG())
	b.WriteString("</figure>\n</section>\n")
	for _, sec := range r.sections() {
		fmt.Fprintf(&b, "<section id=\"%s\"><h2>%s</h2>\n", htmlEsc(sec.ID), htmlEsc(sec.Title))
		for _, bl := range sec.Blocks {
			writeHTMLBlock(&b, bl)
		}
		b.WriteString("</section>\n")
	}
	b.WriteString("</body>\n</html>\n")
	return b.Bytes()
}

func writeHTMLBlock(b *bytes.Buffer, bl docBlock) {
	if bl.Text != "" {
		fmt.Fprintf(b, "<p>%s</p>\n", escLines(bl.Text))
	}
	if len(bl.Facts) > 0 {
		b.WriteString("<dl class=\"facts\">\n")
		for _, f := range bl.Facts {
			fmt.Fprintf(b, "<dt>%s</dt><dd%s>%s</dd>\n", htmlEsc(f.Key), classAttr(f.Class), escLines(f.Value))
		}
		b.WriteString("</dl>\n")
	}
	if bl.Caption != "" {
		fmt.Fprintf(b, "<p class=\"caption\">%s</p>\n", htmlEsc(bl.Caption))
	}
	if len(bl.List) > 0 {
		b.WriteString("<ul>\n")
		for _, item := range bl.List {
			fmt.Fprintf(b, "<li>%s</li>\n", escLines(item))
		}
		b.WriteString("</ul>\n")
	}
	if t := bl.Table; t != nil {
		writeHTMLTable(b, t)
	}
}

func writeHTMLTable(b *bytes.Buffer, t *docTable) {
	align := func(i int) string {
		if i < len(t.Right) && t.Right[i] {
			return " class=\"num\""
		}
		return ""
	}
	b.WriteString("<div class=\"scroll\"><table>\n<thead><tr>")
	for i, h := range t.Head {
		fmt.Fprintf(b, "<th%s>%s</th>", align(i), htmlEsc(h))
	}
	b.WriteString("</tr></thead>\n<tbody>\n")
	for _, r := range t.Rows {
		fmt.Fprintf(b, "<tr%s>", classAttr(r.Class))
		for i, c := range r.Cells {
			cls := align(i)
			switch {
			case strings.HasPrefix(c, "✓"):
				cls = " class=\"good\""
			case strings.HasPrefix(c, "✗"):
				cls = " class=\"bad\""
			}
			fmt.Fprintf(b, "<td%s>%s</td>", cls, escLines(c))
		}
		b.WriteString("</tr>\n")
	}
	b.WriteString("</tbody>\n</table></div>\n")
}

func classAttr(class string) string {
	if class == "" {
		return ""
	}
	return " class=\"" + htmlEsc(class) + "\""
}

// htmlEsc escapes text for HTML and for the SVG inside it (XML): html's
// escaping of < > & ' " gives entities XML knows too. What XML cannot
// carry at all (invalid UTF-8, control characters) becomes U+FFFD.
func htmlEsc(s string) string {
	s = strings.Map(func(r rune) rune {
		if (r < 0x20 && r != '\t' && r != '\n' && r != '\r') || r == 0xFFFE || r == 0xFFFF {
			return '\uFFFD'
		}
		return r
	}, strings.ToValidUTF8(s, "\uFFFD"))
	return html.EscapeString(s)
}

// escLines escapes s and keeps its line breaks visible.
func escLines(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\r", "\n")
	return strings.ReplaceAll(htmlEsc(s), "\n", "<br>")
}

const pageCSS = `
:root { color-scheme: light; }
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
  color: #1f2937; max-width: 1080px; margin: 0 auto; padding: 16px 24px 48px; }
.banner { display: flex; align-items: center; gap: 16px; padding: 14px 20px;
  border-radius: 8px; margin: 8px 0 20px; }
.banner h1 { margin: 0; font-size: 22px; font-weight: 600; overflow-wrap: anywhere; }
.banner .verdict { font-weight: 800; letter-spacing: .06em; padding: 4px 12px;
  border-radius: 6px; color: #fff; }
.passed { background: #dcfce7; color: #14532d; }
.passed .verdict { background: #16a34a; }
.failed { background: #fee2e2; color: #7f1d1d; }
.failed .verdict { background: #dc2626; }
h2 { font-size: 18px; border-bottom: 1px solid #e5e7eb; padding-bottom: 4px; margin-top: 28px; }
figure { margin: 0; }
figure svg { width: 100%; height: auto; display: block; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 8px 0; }
dl.facts dt { color: #6b7280; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { border-bottom: 1px solid #e5e7eb; padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: #f9fafb; font-weight: 600; white-space: nowrap; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.bad td { background: #fef2f2; }
.good { color: #15803d; font-weight: 600; }
.bad { color: #b91c1c; font-weight: 600; }
tr.bad td:not(.bad) { color: inherit; font-weight: normal; }
.caption { margin: 12px 0 4px; color: #374151; }
ul { margin: 4px 0 8px; padding-left: 22px; }
`
