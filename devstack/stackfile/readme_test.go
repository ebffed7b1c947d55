package stackfile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// helpRows parses the variable table that `<service> --help` prints:
// VARIABLE, FLAG, DEFAULT, DESCRIPTION columns.
func helpRows(t *testing.T, help string) map[string]string {
	t.Helper()
	lines := strings.Split(help, "\n")
	rows := map[string]string{}
	for i, l := range lines {
		if !strings.HasPrefix(l, "VARIABLE") {
			continue
		}
		def, desc := strings.Index(l, "DEFAULT"), strings.Index(l, "DESCRIPTION")
		for _, r := range lines[i+1:] {
			if strings.TrimSpace(r) == "" || len(r) < desc {
				break
			}
			rows[strings.Fields(r)[0]] = strings.TrimSpace(r[def:desc])
		}
	}
	if len(rows) == 0 {
		t.Fatalf("no variable table in --help output:\n%s", help)
	}
	return rows
}

// The README's configuration reference must list every variable each
// service reads, with the default the binary really has.
func TestReadmeDocumentsEveryVariable(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, name := range goServices {
		t.Run(name, func(t *testing.T) {
			help, code := runBinary(t, serviceBinary(t, name), nil, "--help")
			if code != 0 {
				t.Fatalf("%s --help exited %d", name, code)
			}
			i := strings.Index(readme, "### "+name+"\n")
			if i < 0 {
				t.Fatalf("README has no '### %s' configuration section", name)
			}
			section := readme[i:]
			if j := strings.Index(section[4:], "\n### "); j >= 0 {
				section = section[:j+4]
			}
			if j := strings.Index(section, "\n## "); j >= 0 {
				section = section[:j]
			}
			for v, def := range helpRows(t, help) {
				if row := "| `" + v + "` | `" + def + "` |"; !strings.Contains(section, row) {
					t.Errorf("README's %s configuration lacks the row %s", name, row)
				}
			}
		})
	}
}
