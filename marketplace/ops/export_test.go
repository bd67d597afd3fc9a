package ops

import "time"

// Exported for the tests of package ops_test.
var (
	APIRoutes     = apiRoutes
	ConsoleRoutes = consoleRoutes
	DecodeOffset  = decodeOffset
	DecodeKey     = decodeKey
	EncodeOffset  = encodeOffset
)

// SignSession and ParseSession expose the session cookie's codec.
func SignSession(key []byte, name string, expires time.Time) string {
	return signSession(key, session{Name: name, Expires: expires.Unix()})
}

func ParseSession(key []byte, value string, now time.Time) (string, error) {
	s, err := parseSession(key, value, now)
	return s.Name, err
}

// SessionCookie is the session cookie's name.
const SessionCookie = sessionCookie
