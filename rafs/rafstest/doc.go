// Package rafstest builds RAFS images in memory for tests: from a tree a
// builder.FillFunc makes, from a directory, or from tartest entries, and
// opens them with rafs.Open. Like net/http/httptest it is for tests only;
// it lives beside rafs (not under internal/) so that the tests of every
// layer above rafs can use it.
//
//	im := rafstest.Build(t, rafstest.Tar(tartest.File("etc/motd", "hi")))
//	data, err := fs.ReadFile(im.Image.FS(ctx, im.Blobs()), "etc/motd")
package rafstest
