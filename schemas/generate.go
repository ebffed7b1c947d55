package schemas

//go:generate go tool avrogen -pkg schemas -o comment_gen.go -tags json:snake comment.avsc
