// What a person needs to put a key on a server: the agent.env lines, the install command and
// the one-step rotation with scoutctl. Built from this page's origin (the gateway's URL).
export const ENV_FILE = "/opt/scout-agent/agent.env";
export const AGENT_DOWNLOAD = "/downloads/scout-agent.pyz";

const quote = (value) => `'${String(value).replaceAll("'", "'\\''")}'`;

export function envFile(apiKey) {
  return `SCOUTAPIKEY=${apiKey}\nSCOUTURL=${location.origin}\n`;
}

export function envLine(apiKey) {
  return `SCOUTAPIKEY=${apiKey}`;
}

export function installCommand(apiKey) {
  return [
    `curl -fsSLo scout-agent.pyz ${location.origin}${AGENT_DOWNLOAD}`,
    `echo ${quote(apiKey)} | sudo python3 scout-agent.pyz install --url ${location.origin}`,
  ].join("\n");
}

export function rotateCommand(serverName) {
  return `sudo scoutctl key rotate ${quote(serverName)} --update-env ${ENV_FILE}`;
}
