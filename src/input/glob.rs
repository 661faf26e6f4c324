//! Name patterns for `import --inventory --match/--exclude`: `*` (any run of characters, also
//! none) and `?` (exactly one character), matched against the whole VM name, ignoring case.
//! Nothing else is special, so a VM name with brackets or dots matches itself.

/// Whether `pattern` matches all of `text`, ignoring case (Unicode-aware, so `ünïcødé*`
/// matches `Ünïcødé 01`).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.to_lowercase().chars().collect();
    let text: Vec<char> = text.to_lowercase().chars().collect();
    // The classic linear-backtracking matcher: on a mismatch, go back to the last `*` and let it
    // swallow one more character. Never worse than O(pattern × text), no recursion.
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((star_p, star_t)) => {
                    p = star_p + 1;
                    t = star_t + 1;
                    star = Some((star_p, star_t + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn star_and_question_mark_match_whole_names_ignoring_case() {
        assert!(glob_match("app-*", "app-001"));
        assert!(glob_match("APP-*", "app-001"));
        assert!(glob_match("*", ""));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("app-00?", "app-001"));
        assert!(!glob_match("app-00?", "app-0010"));
        assert!(!glob_match("app", "app-001"), "whole string, not a prefix");
        assert!(!glob_match("001", "app-001"), "whole string, not a suffix");
        assert!(glob_match("*-0?1", "web-001"));
        assert!(glob_match("*0*1*", "db-013"));
        assert!(!glob_match("db-*", "app-001"));
        assert!(glob_match("a*b*c", "aXXbYYbZc"));
        assert!(!glob_match("a*b*c", "aXXbYYbZ"));
        assert!(glob_match("**", "x"));
        assert!(!glob_match("?", ""));
    }

    #[test]
    fn unicode_names_match_case_insensitively() {
        assert!(glob_match(
            "finance server ünïcødé*",
            "Finance Server Ünïcødé 01"
        ));
        assert!(glob_match("?inance*", "Finance Server Ünïcødé 01"));
    }

    #[test]
    fn other_characters_are_literal() {
        assert!(glob_match("db[1].x", "db[1].x"));
        assert!(!glob_match("db[1].x", "db1.x"));
    }
}
