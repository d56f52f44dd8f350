package drill

import (
	"bytes"
	"fmt"
	"strings"
)

// Markdown renders the report for a person reading it in a terminal or on
// GitHub: a title with the verdict, then the summary, objectives, phases,
// recovery, verification, plan, problems and events. Text from the report
// is escaped so it can neither break a table nor inject HTML.
func (r *Report) Markdown() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Drill %s: %s\n", mdText(r.Scenario), verdict(r.Passed))
	for _, sec := range r.sections() {
		fmt.Fprintf(&b, "\n## %s\n", sec.Title)
		for _, bl := range sec.Blocks {
			b.WriteString("\n")
			writeMarkdownBlock(&b, bl)
		}
	}
	return b.Bytes()
}

func writeMarkdownBlock(b *bytes.Buffer, bl docBlock) {
	if bl.Text != "" {
		b.WriteString(mdText(bl.Text) + "\n")
	}
	for _, f := range bl.Facts {
		fmt.Fprintf(b, "- **%s:** %s\n", mdText(f.Key), mdText(f.Value))
	}
	if bl.Caption != "" {
		b.WriteString(mdText(bl.Caption) + "\n\n")
	}
	for _, item := range bl.List {
		b.WriteString("- " + mdText(item) + "\n")
	}
	if t := bl.Table; t != nil {
		writeMarkdownTable(b, t)
	}
}

func writeMarkdownTable(b *bytes.Buffer, t *docTable) {
	cells := func(cs []string) {
		b.WriteString("|")
		for _, c := range cs {
			b.WriteString(" " + mdCell(c) + " |")
		}
		b.WriteString("\n")
	}
	cells(t.Head)
	b.WriteString("|")
	for i := range t.Head {
		if i < len(t.Right) && t.Right[i] {
			b.WriteString(" ---: |")
		} else {
			b.WriteString(" --- |")
		}
	}
	b.WriteString("\n")
	for _, r := range t.Rows {
		cells(r.Cells)
	}
}

// mdReplacer neutralises what would change the document's structure:
// backslashes and pipes (table cells), "<" (raw HTML on GitHub), and line
// breaks (a list item or a table row must stay on one line).
var mdReplacer = strings.NewReplacer(
	`\`, `\\`,
	"|", `\|`,
	"<", "&lt;",
	"\r\n", "<br>",
	"\n", "<br>",
	"\r", "<br>",
)

func mdText(s string) string { return mdReplacer.Replace(s) }

// mdCell is mdText for a table cell; an empty cell stays readable.
func mdCell(s string) string {
	if s == "" {
		return " "
	}
	return mdText(s)
}
