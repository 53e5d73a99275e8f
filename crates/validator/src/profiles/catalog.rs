//! The profile catalog. Layouts follow each client's defaults as of 2024/2025; comments say
//! where a detail is uncertain. Rules are ordered: the first match classifies a path, so
//! narrow must-keep rules come before broad rebuildable ones.

use super::{Kind, PathRule, Profile, Role};

const fn rule(
    role: Role,
    globs: &'static [&'static str],
    rebuildable: bool,
    note: &'static str,
) -> PathRule {
    PathRule {
        role,
        globs,
        rebuildable,
        note,
    }
}

const KEEP: bool = false;
const REBUILD: bool = true;

/// JWT secret files as operators usually name them next to the data.
const JWT: &[&str] = &["jwt.hex", "jwtsecret", "jwt-secret", "jwt.txt", "*.jwt"];

pub static PROFILES: &[Profile] = &[
    // ---------------------------------------------------------------- execution clients
    Profile {
        name: "geth",
        kinds: &[Kind::Execution],
        description: "go-ethereum; datadir holds geth/chaindata (LevelDB or Pebble) with the \
                      ancient freezer, geth/nodekey, geth/jwtsecret and keystore/",
        // `geth/chaindata` from the datadir; `chaindata/CURRENT` when the inner `geth`
        // directory itself is backed up.
        markers: &[
            &["geth/chaindata"],
            &["chaindata/CURRENT"],
            &["chaindata/ancient"],
        ],
        rules: &[
            rule(
                Role::Keystores,
                &["keystore/**"],
                KEEP,
                "execution-layer accounts",
            ),
            rule(
                Role::NodeKey,
                &["geth/nodekey", "nodekey"],
                KEEP,
                "p2p identity (enode)",
            ),
            rule(
                Role::JwtSecret,
                &["geth/jwtsecret", "jwtsecret", "jwt.hex", "*.jwt"],
                KEEP,
                "engine API secret shared with the beacon node",
            ),
            rule(
                Role::Config,
                &[
                    "*.toml",
                    "geth/static-nodes.json",
                    "geth/trusted-nodes.json",
                ],
                KEEP,
                "",
            ),
            rule(
                Role::Ancient,
                &["geth/chaindata/ancient/**", "chaindata/ancient/**"],
                REBUILD,
                "append-only freezer; large, rebuilt by a resync",
            ),
            rule(
                Role::ChainDb,
                &[
                    "geth/chaindata/**",
                    "chaindata/**",
                    "geth/triecache/**",
                    "triecache/**",
                    "geth/blobpool/**",
                    "blobpool/**",
                    "geth/lightchaindata/**",
                ],
                REBUILD,
                "rebuilt by a resync (snap sync)",
            ),
        ],
        live_markers: &[
            "geth/LOCK",
            "LOCK",
            "geth/chaindata/LOCK",
            "chaindata/LOCK",
            // The freezer takes an flock on FLOCK (present since geth 1.9).
            "geth/chaindata/ancient/**/FLOCK",
            "chaindata/ancient/**/FLOCK",
        ],
        binary: "geth",
        version_args: &["version"],
    },
    Profile {
        name: "nethermind",
        kinds: &[Kind::Execution],
        description: "Nethermind; nethermind_db/<network> RocksDB databases, keystore/ with the \
                      node key and generated JWT secret",
        markers: &[&["nethermind_db"]],
        rules: &[
            rule(
                Role::NodeKey,
                &["keystore/node.key.plain", "node.key.plain"],
                KEEP,
                "p2p identity",
            ),
            rule(
                Role::JwtSecret,
                &[
                    "keystore/jwt-secret",
                    "jwt.hex",
                    "jwtsecret",
                    "jwt-secret",
                    "*.jwt",
                ],
                KEEP,
                "engine API secret",
            ),
            rule(
                Role::Keystores,
                &["keystore/**"],
                KEEP,
                "execution-layer accounts",
            ),
            rule(Role::Config, &["*.cfg", "configs/**", "*.json"], KEEP, ""),
            rule(
                Role::ChainDb,
                &["nethermind_db/**"],
                REBUILD,
                "RocksDB databases per network, rebuilt by snap sync",
            ),
        ],
        live_markers: &["nethermind_db/**/LOCK"],
        // Older releases ship the binary as Nethermind.Runner.
        binary: "nethermind",
        version_args: &["--version"],
    },
    Profile {
        name: "besu",
        kinds: &[Kind::Execution],
        description: "Hyperledger Besu; data-path holds database/ (RocksDB), \
                      DATABASE_METADATA.json, caches/ and the node key file `key`",
        markers: &[
            &["database/DATABASE_METADATA.json"],
            &["DATABASE_METADATA.json"],
        ],
        rules: &[
            rule(
                Role::NodeKey,
                &["key"],
                KEEP,
                "p2p identity (secp256k1 private key)",
            ),
            rule(Role::JwtSecret, JWT, KEEP, "engine API secret"),
            rule(Role::Config, &["*.toml"], KEEP, ""),
            rule(
                Role::ChainDb,
                &["database/**", "caches/**", "DATABASE_METADATA.json"],
                REBUILD,
                "RocksDB, rebuilt by snap/checkpoint sync; the metadata file goes with it",
            ),
        ],
        live_markers: &["database/LOCK"],
        binary: "besu",
        version_args: &["--version"],
    },
    Profile {
        name: "erigon",
        kinds: &[Kind::Execution],
        description: "Erigon; datadir holds chaindata/ (MDBX), snapshots/ (immutable segment \
                      files), nodekey and jwt.hex",
        markers: &[&["chaindata/mdbx.dat"]],
        rules: &[
            rule(Role::NodeKey, &["nodekey"], KEEP, "p2p identity"),
            rule(Role::JwtSecret, JWT, KEEP, "engine API secret"),
            rule(Role::Config, &["*.toml", "*.yaml"], KEEP, ""),
            rule(
                Role::Ancient,
                &["snapshots/**"],
                REBUILD,
                "immutable segment files, downloaded again by the built-in torrent client",
            ),
            rule(
                Role::ChainDb,
                &[
                    "chaindata/**",
                    "txpool/**",
                    "nodes/**",
                    "temp/**",
                    "downloader/**",
                    "caplin/**",
                    "heimdall/**",
                ],
                REBUILD,
                "MDBX databases, rebuilt from the snapshots",
            ),
        ],
        // Erigon flocks <datadir>/LOCK; MDBX locks mdbx.lck with fcntl (OFD locks where
        // available, which /proc/locks lists without a pid).
        live_markers: &[
            "LOCK",
            "chaindata/mdbx.lck",
            "txpool/mdbx.lck",
            "nodes/**/mdbx.lck",
        ],
        binary: "erigon",
        version_args: &["--version"],
    },
    Profile {
        name: "reth",
        kinds: &[Kind::Execution],
        description: "reth; datadir holds db/ (MDBX), static_files/ (append-only segments), \
                      discovery-secret, jwt.hex and reth.toml",
        markers: &[&["db/mdbx.dat", "static_files"]],
        rules: &[
            rule(Role::NodeKey, &["discovery-secret"], KEEP, "p2p identity"),
            rule(Role::JwtSecret, JWT, KEEP, "engine API secret"),
            rule(Role::Config, &["reth.toml", "*.toml"], KEEP, ""),
            rule(
                Role::Ancient,
                &["static_files/**"],
                REBUILD,
                "append-only static files, rebuilt by a resync",
            ),
            rule(
                Role::ChainDb,
                &["db/**", "blobstore/**", "known-peers.json"],
                REBUILD,
                "MDBX database, rebuilt by a resync",
            ),
        ],
        // `db/lock` and `static_files/lock` hold the pid of the running node (reth's storage
        // lock); whether they are also flocked depends on the release (unsure).
        live_markers: &["db/mdbx.lck", "db/lock", "static_files/lock"],
        binary: "reth",
        version_args: &["--version"],
    },
    // ---------------------------------------------------------------- consensus clients
    Profile {
        name: "lighthouse",
        kinds: &[Kind::Consensus, Kind::Validator],
        description: "Lighthouse beacon node and validator client; beacon/{chain_db,freezer_db,\
                      blobs_db} (LevelDB), validators/ (keystores, validator_definitions.yml, \
                      slashing_protection.sqlite), secrets/",
        // `beacon/chain_db` rather than `beacon/` alone: teku also has a `beacon` directory.
        markers: &[
            &["beacon/chain_db"],
            &["beacon/freezer_db"],
            &["validators/validator_definitions.yml"],
            &["validators/slashing_protection.sqlite"],
        ],
        rules: &[
            rule(
                Role::SlashingProtection,
                &[
                    "validators/slashing_protection.sqlite",
                    "validators/slashing_protection.sqlite-*",
                ],
                KEEP,
                "never restore an older copy while the keys sign elsewhere",
            ),
            rule(
                Role::Config,
                &[
                    "validators/validator_definitions.yml",
                    "validators/api-token.txt",
                ],
                KEEP,
                "",
            ),
            rule(
                Role::Keystores,
                &["validators/**", "wallets/**"],
                KEEP,
                "voting-keystore.json per validator",
            ),
            rule(Role::Secrets, &["secrets/**"], KEEP, "keystore passwords"),
            rule(
                Role::NodeKey,
                &["beacon/network/key"],
                KEEP,
                "p2p identity (ENR key)",
            ),
            rule(Role::JwtSecret, JWT, KEEP, "engine API secret"),
            rule(
                Role::ChainDb,
                &[
                    "beacon/chain_db/**",
                    "beacon/freezer_db/**",
                    "beacon/blobs_db/**",
                ],
                REBUILD,
                "rebuilt by checkpoint sync",
            ),
        ],
        // LevelDB LOCK files (fcntl); the validator client flocks a `.lock` next to each
        // keystore (named `voting-keystore.json.lock` in recent releases; unsure for old ones)
        // and its slashing database.
        live_markers: &[
            "beacon/chain_db/LOCK",
            "beacon/freezer_db/LOCK",
            "beacon/blobs_db/LOCK",
            "validators/**/*.lock",
            "validators/slashing_protection.sqlite",
        ],
        binary: "lighthouse",
        version_args: &["--version"],
    },
    Profile {
        name: "prysm",
        kinds: &[Kind::Consensus, Kind::Validator],
        description: "Prysm beacon-chain and validator; beaconchaindata/beaconchain.db and \
                      validator.db (BoltDB), prysm-wallet-v2 with all-accounts.keystore.json",
        markers: &[
            &["beaconchaindata/beaconchain.db"],
            &["validator.db"],
            &["prysm-wallet-v2"],
            &["direct/accounts/all-accounts.keystore.json"],
        ],
        rules: &[
            rule(
                Role::SlashingProtection,
                &["validator.db", "**/validator.db"],
                KEEP,
                "BoltDB with the slashing-protection history",
            ),
            rule(
                Role::Keystores,
                &["prysm-wallet-v2/**", "direct/**", "wallet/**"],
                KEEP,
                "all-accounts.keystore.json (one keystore for every key)",
            ),
            // Where operators keep the wallet password is not standard (unsure).
            rule(
                Role::Secrets,
                &["wallet-password*", "password*.txt"],
                KEEP,
                "wallet password",
            ),
            rule(Role::NodeKey, &["network-keys"], KEEP, "p2p identity"),
            rule(Role::JwtSecret, JWT, KEEP, "engine API secret"),
            rule(Role::Config, &["*.yaml", "*.yml"], KEEP, ""),
            rule(
                Role::ChainDb,
                &["beaconchaindata/**", "blobs/**", "metaData"],
                REBUILD,
                "BoltDB, rebuilt by checkpoint sync",
            ),
        ],
        // BoltDB flocks the database file itself.
        live_markers: &[
            "beaconchaindata/beaconchain.db",
            "validator.db",
            "**/validator.db",
        ],
        binary: "beacon-chain",
        version_args: &["--version"],
    },
    Profile {
        name: "teku",
        kinds: &[Kind::Consensus, Kind::Validator],
        description: "Teku; data-path holds beacon/ (db.version, db/ RocksDB or LevelDB, \
                      kvstore/generated-node-key.dat) and validator/ (slashprotection/*.yml, \
                      key-manager/)",
        markers: &[&["beacon/db.version"], &["validator/slashprotection"]],
        rules: &[
            rule(
                Role::SlashingProtection,
                &["validator/slashprotection/**"],
                KEEP,
                "one YAML record per key",
            ),
            rule(
                Role::Keystores,
                &["validator/key-manager/local/**", "validator/key-manager/**"],
                KEEP,
                "keystores imported through the key-manager API (with their passwords)",
            ),
            rule(
                Role::Secrets,
                &["validator/key-manager/local-passwords/**"],
                KEEP,
                "",
            ),
            rule(
                Role::NodeKey,
                &["beacon/kvstore/generated-node-key.dat"],
                KEEP,
                "p2p identity",
            ),
            rule(Role::JwtSecret, JWT, KEEP, "engine API secret"),
            rule(Role::Config, &["*.yaml", "*.yml"], KEEP, ""),
            rule(
                Role::ChainDb,
                &[
                    "beacon/db/**",
                    "beacon/db.version",
                    "beacon/network.yml",
                    "beacon/metadata.yml",
                ],
                REBUILD,
                "rebuilt by checkpoint sync",
            ),
        ],
        // Teku's keystore locking writes `<keystore>.lock` files holding a pid (not flocked;
        // they only show a crash-free shutdown). The database LOCK is held while running.
        live_markers: &["beacon/db/LOCK", "beacon/**/LOCK", "validator/**/*.lock"],
        binary: "teku",
        version_args: &["--version"],
    },
    Profile {
        name: "nimbus",
        kinds: &[Kind::Consensus, Kind::Validator],
        description: "Nimbus; data-dir holds db/nbc.sqlite3 (SQLite in WAL mode), validators/ \
                      (keystores, slashing_protection.sqlite3), secrets/",
        markers: &[&["db/nbc.sqlite3"]],
        rules: &[
            rule(
                Role::SlashingProtection,
                &[
                    "validators/slashing_protection.sqlite3",
                    "validators/slashing_protection.sqlite3-*",
                ],
                KEEP,
                "",
            ),
            rule(
                Role::Keystores,
                &["validators/**"],
                KEEP,
                "keystore.json per validator",
            ),
            rule(Role::Secrets, &["secrets/**"], KEEP, "keystore passwords"),
            rule(
                Role::NodeKey,
                &["network_key.json", "netkey*"],
                KEEP,
                "p2p identity (if persisted)",
            ),
            rule(Role::JwtSecret, JWT, KEEP, "engine API secret"),
            rule(Role::Config, &["*.toml"], KEEP, ""),
            rule(
                Role::ChainDb,
                &["db/**"],
                REBUILD,
                "rebuilt by checkpoint sync",
            ),
        ],
        // SQLite in WAL mode: every open connection holds an fcntl read lock on the -shm file.
        // Nimbus also keeps a lock file in the data directory (name unsure; `*.lock`).
        live_markers: &[
            "db/nbc.sqlite3-shm",
            "db/nbc.sqlite3",
            "validators/slashing_protection.sqlite3-shm",
            "*.lock",
        ],
        binary: "nimbus_beacon_node",
        version_args: &["--version"],
    },
    Profile {
        name: "lodestar",
        kinds: &[Kind::Consensus, Kind::Validator],
        description: "Lodestar; dataDir holds chain-db/ and validator-db/ (LevelDB), \
                      keystores/, secrets/, peer-id.json",
        markers: &[&["chain-db"], &["validator-db"]],
        rules: &[
            rule(
                Role::SlashingProtection,
                &["validator-db/**"],
                KEEP,
                "LevelDB holding the slashing-protection history",
            ),
            rule(Role::Keystores, &["keystores/**"], KEEP, ""),
            rule(Role::Secrets, &["secrets/**"], KEEP, "keystore passwords"),
            rule(
                Role::NodeKey,
                &["peer-id.json", "enr"],
                KEEP,
                "p2p identity",
            ),
            rule(Role::JwtSecret, JWT, KEEP, "engine API secret"),
            rule(
                Role::Config,
                &["remoteKeys/**", "proposerConfigs/**", "*.yml", "*.yaml"],
                KEEP,
                "",
            ),
            rule(
                Role::ChainDb,
                &["chain-db/**", "cache/**"],
                REBUILD,
                "rebuilt by checkpoint sync",
            ),
        ],
        live_markers: &["chain-db/LOCK", "validator-db/LOCK", "keystores/**/*.lock"],
        binary: "lodestar",
        version_args: &["--version"],
    },
    // ---------------------------------------------------------------- Solana
    Profile {
        name: "agave",
        kinds: &[Kind::Solana],
        description: "Agave (Solana) validator; the ledger directory holds rocksdb/, accounts/, \
                      snapshot archives, genesis and the tower (vote safety record); keypairs \
                      usually sit next to it",
        markers: &[
            &["ledger/rocksdb"],
            &["rocksdb", "genesis.bin"],
            &["accounts", "genesis.bin"],
            &["accounts", "rocksdb"],
        ],
        rules: &[
            rule(
                Role::SlashingProtection,
                &["tower-*.bin", "ledger/tower-*.bin"],
                KEEP,
                "the tower: voting on a fork without it risks lockout violations",
            ),
            rule(
                Role::Keystores,
                &["*keypair*.json", "identity.json", "ledger/*keypair*.json"],
                KEEP,
                "identity, vote and withdrawer keypairs (unencrypted)",
            ),
            rule(
                Role::Config,
                &["genesis.bin", "ledger/genesis.bin", "*.yml", "*.toml"],
                KEEP,
                "",
            ),
            rule(
                Role::Ancient,
                &[
                    "snapshot-*.tar*",
                    "incremental-snapshot-*.tar*",
                    "snapshots/**",
                    "remote/**",
                    "genesis.tar.bz2",
                    "ledger/snapshot-*.tar*",
                    "ledger/incremental-snapshot-*.tar*",
                    "ledger/snapshots/**",
                    "ledger/remote/**",
                ],
                REBUILD,
                "snapshot archives, downloaded again from known validators",
            ),
            rule(
                Role::ChainDb,
                &[
                    "rocksdb/**",
                    "accounts/**",
                    "accounts_index/**",
                    "accounts_hash_cache/**",
                    "snapshot/**",
                    "ledger/rocksdb/**",
                    "ledger/accounts/**",
                    "ledger/accounts_index/**",
                    "ledger/accounts_hash_cache/**",
                    "ledger/snapshot/**",
                ],
                REBUILD,
                "blockstore and accounts DB, rebuilt from a snapshot",
            ),
        ],
        live_markers: &["rocksdb/LOCK", "ledger/rocksdb/LOCK"],
        binary: "agave-validator",
        version_args: &["--version"],
    },
];
