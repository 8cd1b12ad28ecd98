// nnp prints the effective user id it runs with. Installed setuid root in the conformance
// suite's nonewprivs image: with allowPrivilegeEscalation false (no_new_privs) a non-root
// user stays itself; otherwise the setuid bit makes it root. The suite compares the line.
package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Printf("Effective uid: %d\n", os.Geteuid())
}
