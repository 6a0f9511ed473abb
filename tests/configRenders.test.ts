// Config values that reach a node's env file: the parser refuses what the renderer would refuse,
// and every value it accepts renders when the real program runs under the plan.
import { ARCHITECTURES } from "../model/aws";
import { CONFIG_KEYS, ConfigError, ConfigKey, parseConfig } from "../model/config";
import { renderEnvFile } from "../cloud-init/nodeFiles";
import { planConfig, bundleFile } from "./harness";

const API_KEY = "0123456789abcdef0123456789abcdef";

/** The keys whose values a node's env file carries: where, and under which name. */
const CARRIED: Record<string, { node: string; file: string; name: string }> = {
  domain: { node: "lb", file: "/etc/webstack/lb.env", name: "DOMAIN" },
  acmeEmail: { node: "lb", file: "/etc/webstack/lb.env", name: "ACME_EMAIL" },
  acmeDirectory: { node: "lb", file: "/etc/webstack/lb.env", name: "ACME_DIRECTORY" },
  datadogRepoUrl: { node: "s1", file: "/etc/webstack/datadog.env", name: "DATADOG_REPO_URL" },
  cloudWatchAgentUrl: {
    node: "s2",
    file: "/etc/webstack/monitoring.env",
    name: "CLOUDWATCH_AGENT_URL",
  },
};

/** What a node's env file would hold for a value: the agent URL with its architecture put in. */
function carriedForms(key: string, value: string): string[] {
  return key === "cloudWatchAgentUrl"
    ? ARCHITECTURES.map((arch) => value.replace("{arch}", arch))
    : [value];
}

/** Every key the program needs to put all of CARRIED in env files: Let's Encrypt and Datadog on. */
function configWith(values: Record<string, string>): Record<string, string> {
  return {
    domain: "www.example.com",
    certificate: "letsencrypt",
    acmeEmail: "ops@example.com",
    datadog: "true",
    datadogApiKey: API_KEY,
    ...values,
  };
}

function problemsOf(values: Record<string, string>): readonly string[] {
  const raw = Object.fromEntries(
    Object.entries(configWith(values)).map(([k, v]) => [`webstack:${k}`, v]),
  );
  try {
    parseConfig(raw);
    return [];
  } catch (err) {
    if (err instanceof ConfigError) return err.problems;
    throw err;
  }
}

// [key, a value the parser used to accept but the renderer refuses, what the message says]
const REFUSED_BY_THE_RENDERER: [ConfigKey, string, string][] = [
  ["acmeDirectory", "https://acme.example.com/dir?x=1", 'holds "?"'],
  ["acmeDirectory", 'https://acme.example.com/"dir"', 'holds "\\""'],
  ["acmeDirectory", "https://acme.example.com/di\nr", 'holds "\\n"'],
  ["acmeDirectory", "https://acme.example.com/%7Eops/dir", 'holds "%"'],
  ["datadogRepoUrl", "https://apt.example.com/data dog/", 'holds " "'],
  ["datadogRepoUrl", "https://apt.example.com/?a=b", 'holds "?"'],
  ["datadogRepoUrl", "https://apt.example.com/#top", 'holds "#"'],
  ["acmeEmail", "ops%team@example.com", 'holds "%"'],
  ["cloudWatchAgentUrl", "https://agent.example.com/{arch}/{arch}.deb", "holds a brace"],
  ["cloudWatchAgentUrl", "https://agent.example.com/{ARCH}/agent.deb", "holds a brace"],
  ["domain", "www.exa mple.com", "is not a fully qualified domain name"],
];

describe("a value the renderer refuses, the parser refuses first, naming the key", () => {
  test.each(REFUSED_BY_THE_RENDERER)("%s = %j", (key, value, what) => {
    const { name } = CARRIED[key];
    const refusals = carriedForms(key, value).filter((form) => {
      try {
        renderEnvFile({ [name]: form });
        return false;
      } catch {
        return true;
      }
    });
    expect(refusals).not.toEqual([]);
    const problems = problemsOf({ [key]: value });
    expect(problems).toHaveLength(1);
    expect(problems[0]).toContain(`webstack:${key}: ${JSON.stringify(value)} ${what}`);
    expect(problems[0]).toMatch(new RegExp(`; expected ${escape(CONFIG_KEYS[key].accepted)}$`));
  });

  test("every carried key has a refused value", () => {
    expect([...new Set(REFUSED_BY_THE_RENDERER.map(([key]) => key))].sort()).toEqual(
      Object.keys(CARRIED).sort(),
    );
  });
});

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}

/** A small deterministic PRNG (mulberry32): the same candidates on every run. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let t = Math.imul(state ^ (state >>> 15), 1 | state);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Every printable ASCII character, whitespace and a few beyond ASCII. */
const ALPHABET = [
  ...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)),
  "\n",
  "\t",
  "é",
  "ß",
  "\u00a0",
];

/** A valid value of each carried key, with random characters put in at random places. */
const SEEDS: Record<string, string[]> = {
  domain: ["www.example.com", "a.b.example.co"],
  acmeEmail: ["ops@example.com", "first.last+acme@sub.example.org"],
  acmeDirectory: ["https://acme.example.com/directory", "https://acme.example.com:8443/dir"],
  datadogRepoUrl: ["https://apt.datadoghq.com/", "https://mirror.example.com/datadog/"],
  cloudWatchAgentUrl: [
    "https://agent.example.com/debian/{arch}/latest/amazon-cloudwatch-agent.deb",
    "https://agent.example.com/agent.deb",
  ],
};

function mutate(seed: string, next: () => number): string {
  let value = seed;
  const edits = 1 + Math.floor(next() * 3);
  for (let i = 0; i < edits; i++) {
    const at = 8 + Math.floor(next() * Math.max(1, value.length - 8));
    const piece = next() < 0.15 ? "{arch}" : ALPHABET[Math.floor(next() * ALPHABET.length)];
    value = value.slice(0, at) + piece + value.slice(at);
  }
  return value;
}

/** For each carried key, mutated seeds its parser accepts. */
function acceptedCandidates(perKey: number): Record<string, string[]> {
  const next = random(16);
  return Object.fromEntries(
    Object.entries(SEEDS).map(([key, seeds]) => {
      const accepted = new Set<string>();
      for (let tries = 0; accepted.size < perKey && tries < 20_000; tries++) {
        const candidate = mutate(seeds[tries % seeds.length], next);
        try {
          CONFIG_KEYS[key as ConfigKey].parse(candidate);
          accepted.add(candidate);
        } catch {
          // refused: not a candidate
        }
      }
      return [key, [...accepted]];
    }),
  );
}

describe("every value the parser accepts renders", () => {
  const ROUNDS = 4;
  const candidates = acceptedCandidates(ROUNDS);

  test("every key has a candidate for every round, none of them a seed", () => {
    for (const [key, values] of Object.entries(candidates)) {
      expect({ key, count: values.length }).toEqual({ key, count: ROUNDS });
      expect(values.filter((v) => SEEDS[key].includes(v))).toEqual([]);
    }
  });

  // One plan per round, each with a different accepted value for every carried key at once.
  test.each(Array.from({ length: ROUNDS }, (_, round) => [round]))(
    "round %i: the program plans, and the env files carry each value as given",
    async (round) => {
      const values = Object.fromEntries(
        Object.entries(candidates).map(([key, list]) => [key, list[round % list.length]]),
      );
      const plan = await planConfig(configWith(values), {
        secretKeys: ["webstack:datadogApiKey"],
      });
      for (const [key, value] of Object.entries(values)) {
        const { node, file, name } = CARRIED[key];
        const lines = bundleFile(plan, node, file).split("\n");
        const forms = carriedForms(key, value);
        expect(forms.map((form) => `${name}=${form}`)).toContainEqual(
          lines.find((l) => l.startsWith(`${name}=`)),
        );
      }
    },
    60_000,
  );
});

test("the request limits in the config reach every layer on every node that has it", async () => {
  const plan = await planConfig({
    domain: "www.example.com",
    lbServerTimeoutSeconds: "120",
    maxBodyMiB: "50",
    rateLimitPerClient: "3000",
  });
  const haproxy = bundleFile(plan, "lb", "/etc/haproxy/haproxy.cfg");
  expect(haproxy).toMatch(/^ {4}timeout server 120s$/m);
  expect(haproxy).toMatch(
    /^ {4}http-request return status 429 .* if \{ sc_http_req_rate\(0\) gt 3000 \}$/m,
  );
  for (const node of ["s1", "s2"]) {
    const site = bundleFile(plan, node, "/etc/nginx/sites-available/webstack");
    expect(site).toMatch(/^ {4}client_max_body_size 50m;$/m);
    expect(site).toMatch(/^ {4}proxy_read_timeout 119s;$/m);
    const gunicorn = bundleFile(plan, node, "/etc/webstack/gunicorn.conf.py");
    expect(gunicorn).toMatch(/^timeout = 120$/m);
    expect(gunicorn).toMatch(/^ {8}"WEBSTACK_DB_WAIT_S": "118",$/m);
  }
});
