package usage

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Reserved user label keys that Marketplace forwards to Cloud Billing's cost
// tools (best-practices-labeling).
const (
	// LabelResourceName names the resource the usage belongs to.
	LabelResourceName = "cloudmarketplace.googleapis.com/resource_name"
	// LabelContainerName names the resource's container.
	LabelContainerName = "cloudmarketplace.googleapis.com/container_name"
)

// Limits of Google's label syntax.
const (
	maxLabels      = 64
	maxLabelLength = 63 // characters, for keys (after any reserved prefix) and values
)

const reservedPrefix = "cloudmarketplace.googleapis.com/"

// noLabels is the canonical form of an empty label set.
const noLabels = "{}"

// validateLabels checks labels against Google's label syntax: at most 64
// labels; keys of 1 to 63 characters starting with a lowercase letter, then
// lowercase letters, digits, '_' and '-' (international characters allowed);
// values of up to 63 such characters. The only keys with a domain prefix
// allowed are the two reserved Marketplace keys.
func validateLabels(labels map[string]string) error {
	if len(labels) > maxLabels {
		return fmt.Errorf("%d labels, at most %d allowed", len(labels), maxLabels)
	}
	for k, v := range labels {
		name := k
		if strings.Contains(k, "/") {
			if k != LabelResourceName && k != LabelContainerName {
				return fmt.Errorf("label key %q: only the reserved %s keys may have a prefix", shorten(k), reservedPrefix)
			}
			name = strings.TrimPrefix(k, reservedPrefix)
		}
		if err := checkLabelText(name, true); err != nil {
			return fmt.Errorf("label key %q: %w", shorten(k), err)
		}
		if err := checkLabelText(v, false); err != nil {
			return fmt.Errorf("label %q value %q: %w", shorten(k), shorten(v), err)
		}
	}
	return nil
}

func checkLabelText(s string, key bool) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("not valid UTF-8")
	}
	n := utf8.RuneCountInString(s)
	if key && n == 0 {
		return fmt.Errorf("empty")
	}
	if n > maxLabelLength {
		return fmt.Errorf("%d characters, at most %d allowed", n, maxLabelLength)
	}
	for i, r := range s {
		letter := unicode.IsLetter(r) && !unicode.IsUpper(r) && !unicode.IsTitle(r)
		if key && i == 0 && !letter {
			return fmt.Errorf("must start with a lowercase letter")
		}
		if !letter && !unicode.IsDigit(r) && r != '_' && r != '-' {
			return fmt.Errorf("character %q not allowed (lowercase letters, digits, '_' and '-' only)", r)
		}
	}
	return nil
}

// encodeLabels returns the canonical form of labels: a JSON object with
// sorted keys, "{}" when there are none.
func encodeLabels(labels map[string]string) string {
	if len(labels) == 0 {
		return noLabels
	}
	b, err := json.Marshal(labels) // map keys are sorted
	if err != nil {
		panic(err) // a map[string]string always encodes
	}
	return string(b)
}

// decodeLabels is the inverse of encodeLabels; nil for "{}".
func decodeLabels(s string) (map[string]string, error) {
	if s == noLabels || s == "" {
		return nil, nil
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		return nil, fmt.Errorf("usage: stored labels %q: %w", shorten(s), err)
	}
	return m, nil
}

// shorten keeps error messages small: labels can hold customer data.
func shorten(s string) string {
	const limit = 40
	if len(s) <= limit {
		return s
	}
	for i := limit; i > 0; i-- {
		if utf8.RuneStart(s[i]) {
			return s[:i] + "…"
		}
	}
	return ""
}
