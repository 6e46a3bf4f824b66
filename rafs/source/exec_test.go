package source_test

import "os/exec"

func execTar(dir, out string) ([]byte, error) {
	return exec.Command("tar", "--xattrs", "--xattrs-include=*", "--numeric-owner", "-C", dir, "-cf", out, ".").CombinedOutput()
}
