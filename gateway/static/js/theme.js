// Light and dark: follow the system unless the person chose one; the choice is remembered.
const KEY = "scout.theme";
const CHOICES = ["system", "light", "dark"];
const listeners = new Set();
const media = matchMedia("(prefers-color-scheme: dark)");

export function themeChoice() {
  try {
    const stored = localStorage.getItem(KEY);
    return CHOICES.includes(stored) ? stored : "system";
  } catch {
    return "system";
  }
}

export function isDark() {
  const choice = themeChoice();
  return choice === "dark" || (choice === "system" && media.matches);
}

export function applyTheme(choice = themeChoice()) {
  const root = document.documentElement;
  if (choice === "system") delete root.dataset.theme;
  else root.dataset.theme = choice;
  for (const listener of listeners) listener();
}

export function setTheme(choice) {
  try {
    if (choice === "system") localStorage.removeItem(KEY);
    else localStorage.setItem(KEY, choice);
  } catch {
    // Not remembered where storage is unavailable; still applied.
  }
  applyTheme(choice);
}

export function nextTheme() {
  return CHOICES[(CHOICES.indexOf(themeChoice()) + 1) % CHOICES.length];
}

/** Charts draw on canvas: they need to redraw when the theme changes. */
export function onThemeChange(listener) {
  listeners.add(listener);
  return () => listeners.delete(listener);
}

media.addEventListener("change", () => applyTheme());

/** A CSS custom property resolved to a colour the canvas understands. */
export function cssColor(variable) {
  const probe = document.createElement("span");
  probe.style.color = `var(${variable})`;
  probe.style.display = "none";
  document.body.append(probe);
  const value = getComputedStyle(probe).color;
  probe.remove();
  return value;
}
