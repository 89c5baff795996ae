/*
 * Joyride's C shim over DPDK.
 *
 * DPDK implements its data-path API (rx/tx bursts, mbuf allocation and
 * accessors, rte_errno, the lcore id) as `static inline` functions and
 * function-like macros, which have no symbol to link against. This header
 * wraps each one we use in a real function (prefix `jr_`), and re-exports the
 * flag values that DPDK only defines through function-like macros as
 * constants bindgen can evaluate.
 *
 * Not for: logic. Every function here is a one-line forward.
 */
#ifndef JOYRIDE_DPDK_SHIM_H
#define JOYRIDE_DPDK_SHIM_H

#include <stdint.h>

#include <rte_config.h>
#include <rte_dev.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>

/* Offload capability and request bits (RTE_BIT64-based in DPDK). */
static const uint64_t JR_ETH_TX_OFFLOAD_IPV4_CKSUM = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
static const uint64_t JR_ETH_TX_OFFLOAD_UDP_CKSUM = RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
static const uint64_t JR_ETH_TX_OFFLOAD_TCP_CKSUM = RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
static const uint64_t JR_ETH_TX_OFFLOAD_MULTI_SEGS = RTE_ETH_TX_OFFLOAD_MULTI_SEGS;
static const uint64_t JR_ETH_RX_OFFLOAD_IPV4_CKSUM = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
static const uint64_t JR_ETH_RX_OFFLOAD_UDP_CKSUM = RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
static const uint64_t JR_ETH_RX_OFFLOAD_TCP_CKSUM = RTE_ETH_RX_OFFLOAD_TCP_CKSUM;

/* RSS hash types (for rss_conf.rss_hf, masked by flow_type_rss_offloads). */
static const uint64_t JR_ETH_RSS_IP = RTE_ETH_RSS_IP;
static const uint64_t JR_ETH_RSS_UDP = RTE_ETH_RSS_UDP;
static const uint64_t JR_ETH_RSS_TCP = RTE_ETH_RSS_TCP;

/* Per-mbuf offload flags. */
static const uint64_t JR_MBUF_F_TX_IPV4 = RTE_MBUF_F_TX_IPV4;
static const uint64_t JR_MBUF_F_TX_IPV6 = RTE_MBUF_F_TX_IPV6;
static const uint64_t JR_MBUF_F_TX_IP_CKSUM = RTE_MBUF_F_TX_IP_CKSUM;
static const uint64_t JR_MBUF_F_TX_TCP_CKSUM = RTE_MBUF_F_TX_TCP_CKSUM;
static const uint64_t JR_MBUF_F_TX_UDP_CKSUM = RTE_MBUF_F_TX_UDP_CKSUM;
static const uint64_t JR_MBUF_F_RX_IP_CKSUM_MASK = RTE_MBUF_F_RX_IP_CKSUM_MASK;
static const uint64_t JR_MBUF_F_RX_IP_CKSUM_GOOD = RTE_MBUF_F_RX_IP_CKSUM_GOOD;
static const uint64_t JR_MBUF_F_RX_L4_CKSUM_MASK = RTE_MBUF_F_RX_L4_CKSUM_MASK;
static const uint64_t JR_MBUF_F_RX_L4_CKSUM_GOOD = RTE_MBUF_F_RX_L4_CKSUM_GOOD;

/* Sizes. */
static const uint16_t JR_MBUF_DEFAULT_BUF_SIZE = RTE_MBUF_DEFAULT_BUF_SIZE;
static const uint16_t JR_PKTMBUF_HEADROOM = RTE_PKTMBUF_HEADROOM;
static const uint32_t JR_MEMPOOL_NAMESIZE = RTE_MEMPOOL_NAMESIZE;

/* Link state, read without waiting (rte_eth_link is a bitfield struct). */
struct jr_link {
	uint32_t speed_mbps;
	uint8_t up;
	uint8_t full_duplex;
	uint8_t autoneg;
};

int jr_errno(void);
unsigned jr_lcore_id(void);
int jr_link_get_nowait(uint16_t port_id, struct jr_link *out);

uint16_t jr_eth_rx_burst(uint16_t port_id, uint16_t queue_id,
			 struct rte_mbuf **rx_pkts, uint16_t nb_pkts);
uint16_t jr_eth_tx_burst(uint16_t port_id, uint16_t queue_id,
			 struct rte_mbuf **tx_pkts, uint16_t nb_pkts);
uint16_t jr_eth_tx_prepare(uint16_t port_id, uint16_t queue_id,
			   struct rte_mbuf **tx_pkts, uint16_t nb_pkts);

struct rte_mbuf *jr_pktmbuf_alloc(struct rte_mempool *mp);
int jr_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs,
			  unsigned count);
void jr_pktmbuf_free(struct rte_mbuf *m);
uint8_t *jr_pktmbuf_mtod(struct rte_mbuf *m);
uint16_t jr_pktmbuf_data_len(const struct rte_mbuf *m);
uint32_t jr_pktmbuf_pkt_len(const struct rte_mbuf *m);
uint16_t jr_pktmbuf_nb_segs(const struct rte_mbuf *m);
uint16_t jr_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t jr_pktmbuf_tailroom(const struct rte_mbuf *m);
uint8_t *jr_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
uint8_t *jr_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
uint8_t *jr_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
int jr_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
void jr_pktmbuf_reset(struct rte_mbuf *m);

uint64_t jr_mbuf_ol_flags(const struct rte_mbuf *m);
void jr_mbuf_set_ol_flags(struct rte_mbuf *m, uint64_t flags);
void jr_mbuf_set_tx_lens(struct rte_mbuf *m, uint16_t l2_len, uint16_t l3_len);

#endif
