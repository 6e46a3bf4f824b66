// Package logrusbridge sends logrus records (BuildKit and containerd log
// through logrus) to a slog handler, so a binary writes one stream in one
// format.
package logrusbridge

import (
	"context"
	"io"
	"log/slog"
	"maps"
	"slices"

	"github.com/sirupsen/logrus"
)

// Install routes every record of logger through h: logrus's own output
// is discarded, its level follows h's (debug records are only built when
// h wants them).
func Install(logger *logrus.Logger, h slog.Handler) {
	logger.AddHook(&hook{h: h})
	logger.SetOutput(io.Discard)
	logger.SetFormatter(nopFormatter{})
	logger.SetLevel(logrus.PanicLevel)
	for _, l := range []logrus.Level{logrus.TraceLevel, logrus.DebugLevel, logrus.InfoLevel, logrus.WarnLevel, logrus.ErrorLevel} {
		if h.Enabled(context.Background(), Level(l)) {
			logger.SetLevel(l)
			break
		}
	}
}

// Level maps a logrus level to slog's: trace below debug, fatal and panic
// above error.
func Level(l logrus.Level) slog.Level {
	switch l {
	case logrus.TraceLevel:
		return slog.LevelDebug - 4
	case logrus.DebugLevel:
		return slog.LevelDebug
	case logrus.InfoLevel:
		return slog.LevelInfo
	case logrus.WarnLevel:
		return slog.LevelWarn
	case logrus.ErrorLevel:
		return slog.LevelError
	}
	return slog.LevelError + 4 // fatal, panic
}

type hook struct{ h slog.Handler }

func (*hook) Levels() []logrus.Level { return logrus.AllLevels }

func (k *hook) Fire(e *logrus.Entry) error {
	ctx := e.Context
	if ctx == nil {
		ctx = context.Background()
	}
	level := Level(e.Level)
	if !k.h.Enabled(ctx, level) {
		return nil
	}
	r := slog.NewRecord(e.Time, level, e.Message, 0)
	for _, key := range slices.Sorted(maps.Keys(e.Data)) {
		v := e.Data[key]
		if err, ok := v.(error); ok {
			v = err.Error()
		}
		r.AddAttrs(slog.Any(key, v))
	}
	return k.h.Handle(ctx, r)
}

// nopFormatter skips formatting records the hook has already sent.
type nopFormatter struct{}

func (nopFormatter) Format(*logrus.Entry) ([]byte, error) { return nil, nil }
