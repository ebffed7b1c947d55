// Package config reads a service's configuration once, from environment
// variables with matching command-line flags, into typed fields with
// documented defaults.
//
// Every variable is declared with its name, default and a one-line usage:
//
//	var cfg struct{ Rate int }
//	s := config.New("producer")
//	s.Int(&cfg.Rate, "PRODUCER_RATE", 20, "events per second, 0 = unlimited", config.Min(0))
//	if err := s.Parse(args, getenv); err != nil { ... }
//
// A flag (--producer-rate) wins over the variable, which wins over the
// default. Errors name the variable (and its flag), so a bad deployment says
// exactly what to fix. Usage prints every variable with its default, and
// Attrs gives the resolved values for one startup log line with secrets
// masked.
package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// ErrHelp is returned by Parse when -h, -help or --help was asked for; the
// caller prints Usage and exits 0.
var ErrHelp = flag.ErrHelp

// Error is a configuration error naming the variable at fault.
type Error struct {
	Var string // the environment variable, e.g. "PRODUCER_RATE"
	Msg string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (--%s): %s", e.Var, FlagName(e.Var), e.Msg)
}

// Errorf makes an *Error for the variable name.
func Errorf(name, format string, a ...any) error {
	return &Error{Var: name, Msg: fmt.Sprintf(format, a...)}
}

// FlagName is the flag matching an environment variable: lower case, "_"
// becomes "-" (KAFKA_BROKERS -> kafka-brokers).
func FlagName(env string) string {
	return strings.ReplaceAll(strings.ToLower(env), "_", "-")
}

type variable struct {
	name, def, usage string
	secret           bool
	isBool           bool // a bare --flag means true
	set              func(raw string) error
	raw              string // the value in force after Parse
	flag             *string
}

// Set is the list of variables of one service.
type Set struct {
	name string
	vars []*variable
}

// New starts the variable list of the named service.
func New(service string) *Set { return &Set{name: service} }

func (s *Set) add(name, def, usage string, secret bool, set func(string) error) {
	s.vars = append(s.vars, &variable{name: name, def: def, usage: usage, secret: secret, set: set})
}

// setter is how a variable of type T takes its raw value: parse turns it
// into a T (its error is the message), then every check runs on the
// value, then it is stored in p.
func setter[T any](p *T, parse func(string) (T, error), checks []func(T) error) func(string) error {
	return func(raw string) error {
		v, err := parse(raw)
		if err != nil {
			return err
		}
		for _, c := range checks {
			if err := c(v); err != nil {
				return err
			}
		}
		*p = v
		return nil
	}
}

// String declares a string variable. Checks run on the final value.
func (s *Set) String(p *string, name, def, usage string, checks ...func(string) error) {
	s.add(name, def, usage, false, setter(p, func(raw string) (string, error) { return raw, nil }, checks))
}

// Secret declares a string variable whose value is masked in Attrs.
func (s *Set) Secret(p *string, name, usage string) {
	s.add(name, "", usage, true, func(raw string) error { *p = raw; return nil })
}

// Enum declares a string variable that must be one of allowed (compared
// case-insensitively; the value stored is the allowed spelling).
func (s *Set) Enum(p *string, name, def, usage string, allowed ...string) {
	s.add(name, def, usage+" ("+strings.Join(quoteEmpty(allowed), "|")+")", false, func(raw string) error {
		for _, a := range allowed {
			if strings.EqualFold(raw, a) {
				*p = a
				return nil
			}
		}
		return fmt.Errorf("%q is not one of %s", raw, strings.Join(quoteEmpty(allowed), ", "))
	})
}

func quoteEmpty(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		if s == "" {
			s = `""`
		}
		out[i] = s
	}
	return out
}

// Int declares an integer variable.
func (s *Set) Int(p *int, name string, def int, usage string, checks ...func(int) error) {
	s.add(name, strconv.Itoa(def), usage, false, setter(p, func(raw string) (int, error) {
		v, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil {
			return 0, fmt.Errorf("%q is not a whole number", raw)
		}
		return v, nil
	}, checks))
}

// Int64 declares a 64-bit integer variable.
func (s *Set) Int64(p *int64, name string, def int64, usage string, checks ...func(int) error) {
	var v int
	s.Int(&v, name, int(def), usage, append(checks, func(i int) error { *p = int64(i); return nil })...)
}

// Float declares a floating-point variable.
func (s *Set) Float(p *float64, name string, def float64, usage string, checks ...func(float64) error) {
	s.add(name, strconv.FormatFloat(def, 'g', -1, 64), usage, false, setter(p, func(raw string) (float64, error) {
		v, err := strconv.ParseFloat(strings.TrimSpace(raw), 64)
		if err != nil {
			return 0, fmt.Errorf("%q is not a number", raw)
		}
		return v, nil
	}, checks))
}

// Bool declares a boolean variable (true/false, 1/0, yes/no, on/off); its
// flag may be given bare (--kafka-tls) for true.
func (s *Set) Bool(p *bool, name string, def bool, usage string) {
	defer func() { s.vars[len(s.vars)-1].isBool = true }()
	s.add(name, strconv.FormatBool(def), usage, false, func(raw string) error {
		switch strings.ToLower(strings.TrimSpace(raw)) {
		case "1", "t", "true", "yes", "y", "on":
			*p = true
		case "0", "f", "false", "no", "n", "off":
			*p = false
		default:
			return fmt.Errorf("%q is not a boolean (true or false)", raw)
		}
		return nil
	})
}

// Duration declares a duration variable ("250ms", "10s", "1m").
func (s *Set) Duration(p *time.Duration, name string, def time.Duration, usage string, checks ...func(time.Duration) error) {
	s.add(name, def.String(), usage, false, setter(p, func(raw string) (time.Duration, error) {
		v, err := time.ParseDuration(strings.TrimSpace(raw))
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (like 500ms, 10s, 1m)", raw)
		}
		return v, nil
	}, checks))
}

// List declares a comma-separated list; empty items are dropped.
func (s *Set) List(p *[]string, name, def, usage string, checks ...func([]string) error) {
	s.add(name, def, usage, false, setter(p, func(raw string) ([]string, error) {
		var out []string
		for _, item := range strings.Split(raw, ",") {
			if item = strings.TrimSpace(item); item != "" {
				out = append(out, item)
			}
		}
		return out, nil
	}, checks))
}

// Parse reads the flags in args (without the program name) and the
// environment through getenv, and stores every value. It returns ErrHelp
// for --help, or the first error, naming its variable.
func (s *Set) Parse(args []string, getenv func(string) string) error {
	fs := flag.NewFlagSet(s.name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	for _, v := range s.vars {
		v.flag = new(string)
		fs.Var(&flagValue{p: v.flag, isBool: v.isBool}, FlagName(v.name), v.usage)
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ErrHelp
		}
		return fmt.Errorf("%s: %w (see --help)", s.name, err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q (see --help)", s.name, fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	for _, v := range s.vars {
		switch env, ok := lookup(getenv, v.name); {
		case given[FlagName(v.name)]:
			v.raw = *v.flag
		case ok:
			v.raw = env
		default:
			v.raw = v.def
		}
		if err := v.set(v.raw); err != nil {
			return &Error{Var: v.name, Msg: err.Error()}
		}
	}
	return nil
}

// flagValue keeps a flag's raw text; the variable's own parser reads it.
type flagValue struct {
	p      *string
	isBool bool
}

func (f *flagValue) String() string {
	if f == nil || f.p == nil {
		return ""
	}
	return *f.p
}

func (f *flagValue) Set(v string) error { *f.p = v; return nil }

func (f *flagValue) IsBoolFlag() bool { return f.isBool }

// lookup treats an empty variable as unset, as compose files and shells
// often pass VAR= for "default".
func lookup(getenv func(string) string, name string) (string, bool) {
	v := getenv(name)
	return v, v != ""
}

// Usage writes the service's variables with their flags, defaults and
// descriptions.
func (s *Set) Usage(w io.Writer) {
	fmt.Fprintf(w, "Usage: %s [flags]\n       %s healthcheck [--http-addr ADDR]\n       %s --version\n\n", s.name, s.name, s.name)
	fmt.Fprintf(w, "Configuration comes from environment variables; a flag overrides its variable.\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "VARIABLE\tFLAG\tDEFAULT\tDESCRIPTION")
	for _, v := range s.vars {
		def := v.def
		if def == "" {
			def = `""`
		}
		fmt.Fprintf(tw, "%s\t--%s\t%s\t%s\n", v.name, FlagName(v.name), def, v.usage)
	}
	_ = tw.Flush()
}

// Names lists the declared variables, in declaration order.
func (s *Set) Names() []string {
	out := make([]string, len(s.vars))
	for i, v := range s.vars {
		out[i] = v.name
	}
	return out
}

// Attrs are the values in force after Parse, secrets masked, for a single
// "config" log line at startup.
func (s *Set) Attrs() []any {
	out := make([]any, 0, len(s.vars))
	for _, v := range s.vars {
		val := v.raw
		if v.secret && val != "" {
			val = "*****"
		}
		out = append(out, slog.String(v.name, MaskPassword(val, val)))
	}
	return out
}

// MaskPassword hides the password of the URL uri (scheme://user:pass@...,
// also with several hosts, as MongoDB URIs have) wherever it appears in
// msg: a value to log, or an error message that quotes the URL. It is the
// one masking function of the services.
func MaskPassword(msg, uri string) string {
	scheme := strings.Index(uri, "://")
	if scheme < 0 {
		return msg
	}
	rest := uri[scheme+3:]
	at := strings.LastIndex(rest, "@")
	if slash := strings.Index(rest, "/"); at < 0 || (slash >= 0 && slash < at) {
		return msg
	}
	_, pass, ok := strings.Cut(rest[:at], ":")
	if !ok || pass == "" {
		return msg
	}
	return strings.ReplaceAll(msg, pass, "*****")
}

// Min is a check that an integer is at least lo.
func Min(lo int) func(int) error {
	return func(v int) error {
		if v < lo {
			return fmt.Errorf("must be at least %d, got %d", lo, v)
		}
		return nil
	}
}

// Max is a check that an integer is at most hi.
func Max(hi int) func(int) error {
	return func(v int) error {
		if v > hi {
			return fmt.Errorf("must be at most %d, got %d", hi, v)
		}
		return nil
	}
}

// Positive is a check that a duration is greater than zero.
func Positive(d time.Duration) error {
	if d <= 0 {
		return fmt.Errorf("must be greater than 0, got %s", d)
	}
	return nil
}

// NotEmpty is a check that a string is not empty.
func NotEmpty(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// UntrustedCert reports a server certificate that does not verify (an
// unknown authority, a wrong host name, an expired certificate): a
// mistake in the configuration's CA, which waiting cannot cure.
func UntrustedCert(err error) bool {
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var tv *tls.CertificateVerificationError
	return errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &tv)
}
