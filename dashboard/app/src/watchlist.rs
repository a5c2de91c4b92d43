//! The watched symbols: kept in localStorage, and filled in when there is nothing to show.

use crate::store::SymbolsChange;

const STORAGE_KEY: &str = "stockstream.watchlist";
/// How many symbols are watched when the list is empty and symbols appear.
const AUTO_WATCH: usize = 5;

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok().flatten()
}

/// The stored list; None on a first visit (or if storage is unavailable or unreadable).
pub fn load() -> Option<Vec<String>> {
    storage()
        .and_then(|storage| storage.get_item(STORAGE_KEY).ok().flatten())
        .and_then(|json| serde_json::from_str::<Vec<String>>(&json).ok())
        .map(|list| without_duplicates(list.into_iter()))
}

pub fn save(list: &[String]) {
    if let (Some(storage), Ok(json)) = (storage(), serde_json::to_string(list)) {
        // Private browsing may refuse to store; the list then lasts only this visit.
        let _ = storage.set_item(STORAGE_KEY, &json);
    }
}

/// The list to watch after the server's symbols changed, or None to keep the current one.
/// Nothing watched gets the first few symbols on a first visit, and whenever new symbols
/// appear; a list the user emptied stays empty across reloads until then.
pub fn auto_fill(
    current: &[String],
    seen: &[String],
    change: SymbolsChange,
    first_visit: bool,
) -> Option<Vec<String>> {
    let fill = match change {
        SymbolsChange::None => false,
        SymbolsChange::First => first_visit,
        SymbolsChange::New => true,
    };
    if !fill || !current.is_empty() || seen.is_empty() {
        return None;
    }
    Some(seen.iter().take(AUTO_WATCH).cloned().collect())
}

pub fn with_added(current: &[String], symbol: &str) -> Vec<String> {
    without_duplicates(current.iter().cloned().chain([symbol.to_string()]))
}

pub fn with_removed(current: &[String], symbol: &str) -> Vec<String> {
    current.iter().filter(|s| *s != symbol).cloned().collect()
}

fn without_duplicates(symbols: impl Iterator<Item = String>) -> Vec<String> {
    let mut list: Vec<String> = Vec::new();
    for symbol in symbols {
        if !symbol.is_empty() && !list.contains(&symbol) {
            list.push(symbol);
        }
    }
    list
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn fills_an_empty_list_on_a_first_visit_or_when_symbols_appear() {
        let seen = strings(&["A", "B", "C", "D", "E", "F"]);
        let first_five = Some(strings(&["A", "B", "C", "D", "E"]));
        assert_eq!(
            auto_fill(&[], &seen, SymbolsChange::First, true),
            first_five
        );
        assert_eq!(auto_fill(&[], &seen, SymbolsChange::First, false), None);
        assert_eq!(auto_fill(&[], &seen, SymbolsChange::New, false), first_five);
        assert_eq!(auto_fill(&[], &seen, SymbolsChange::None, true), None);
        assert_eq!(
            auto_fill(&strings(&["F"]), &seen, SymbolsChange::New, true),
            None
        );
        assert_eq!(auto_fill(&[], &[], SymbolsChange::First, true), None);
    }

    #[test]
    fn adds_and_removes_once() {
        let list = with_added(&strings(&["A"]), "B");
        assert_eq!(with_added(&list, "A"), strings(&["A", "B"]));
        assert_eq!(with_removed(&list, "A"), strings(&["B"]));
    }
}
