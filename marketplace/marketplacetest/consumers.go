package marketplacetest

// This file holds the Service Control request rules of issue 21, item 8:
// the consumer id forms and the userLabels syntax.

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// canonicalConsumer maps the consumer id forms the discovery document lists
// for the same project to the form usageReportingId uses,
// "project_number:N". Operation.consumerId (servicecontrol/v1 discovery
// document): "project:PROJECT_ID, project_number:PROJECT_NUMBER,
// projects/PROJECT_ID or PROJECT_NUMBER, folders/FOLDER_NUMBER,
// organizations/ORGANIZATION_NUMBER, api_key:API_KEY". Emulated consumer
// projects have no project id distinct from their number, so
// "projects/N" (and "project:N", undocumented whether Google resolves a
// number written as an id: chosen yes, as a project id cannot be all
// digits) is the same consumer; folders, organizations and API keys are
// never consumers of a Marketplace entitlement and stay unknown.
func canonicalConsumer(id string) string {
	for _, prefix := range []string{"projects/", "project:"} {
		if n, ok := strings.CutPrefix(id, prefix); ok && n != "" && allDigits(n) {
			return "project_number:" + n
		}
	}
	return id
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Label limits of Google Cloud ("Requirements for labels",
// cloud.google.com/resource-manager/docs/labels-overview): at most 64
// labels; keys 1 to 63 characters starting with a lowercase letter; keys
// and values hold only lowercase letters, digits, underscores and dashes
// (international characters allowed); values at most 63 characters.
const (
	maxUserLabels   = 64
	maxLabelRunes   = 63
	labelRuleSource = "keys must start with a lowercase letter; keys and values may hold only lowercase letters, digits, '_' and '-', at most 63 characters"
)

// reservedUserLabels are the keys Marketplace reserves, the only prefixed
// keys documented ("Best practices for labeling usage",
// cloud.google.com/marketplace/docs/partners/integrated-saas/best-practices-labeling).
// Any other key containing "/" breaks the label rules.
var reservedUserLabels = map[string]bool{
	"cloudmarketplace.googleapis.com/resource_name":  true,
	"cloudmarketplace.googleapis.com/container_name": true,
}

// checkUserLabels refuses Operation.userLabels that break Google's label
// rules with 400 INVALID_ARGUMENT for the whole request. Undocumented
// whether Service Control checks userLabels (a "Private Preview" field) by
// these rules and how it answers: chosen because they are the rules of
// labels everywhere in Google Cloud and a request-level refusal, like the
// other malformed fields, makes a label the SDK builds wrongly fail in
// tests rather than at Google.
func checkUserLabels(op *wireOperation, path string) *apiError {
	if len(op.UserLabels) > maxUserLabels {
		return invalidArgument("Invalid value at '%s.user_labels': %d labels, at most %d.", path, len(op.UserLabels), maxUserLabels)
	}
	for k, v := range op.UserLabels {
		if reservedUserLabels[k] {
			k = "reserved" // the name part of the key is not checked again
		}
		first, _ := utf8.DecodeRuneInString(k)
		if k == "" || !unicode.IsLower(first) || !labelText(k) || utf8.RuneCountInString(k) > maxLabelRunes {
			return invalidArgument("Invalid value at '%s.user_labels': key %q: %s.", path, shorten(k, 70), labelRuleSource)
		}
		if !labelText(v) || utf8.RuneCountInString(v) > maxLabelRunes {
			return invalidArgument("Invalid value at '%s.user_labels': value %q of key %q: %s.", path, shorten(v, 70), k, labelRuleSource)
		}
	}
	return nil
}

func labelText(s string) bool {
	for _, r := range s {
		if !unicode.IsLower(r) && !unicode.IsDigit(r) && r != '_' && r != '-' && !(r > unicode.MaxASCII && unicode.IsLetter(r) && !unicode.IsUpper(r)) {
			return false
		}
	}
	return utf8.ValidString(s)
}
