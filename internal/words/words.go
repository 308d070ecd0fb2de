// Package words holds the small helpers of the sentences gitgw prints, so
// that every summary, subject and message counts the same way.
package words

import "fmt"

// Plural is "1 change", "2 changes": counts in what an operator reads
// ("1 changes" reads as a bug, and was reported as one).
func Plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}
