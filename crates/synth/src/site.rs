//! The shop: catalog, pages, static assets and API answers, as bytes.
//!
//! Pages are HTML generated from the catalog; every page pulls in the site
//! stylesheet and script, a logo, and product images; product and cart pages
//! call small JSON APIs. Bodies are deterministic per URL so they can be
//! cached (encoded once per encoding).

use std::collections::HashMap;
use std::fmt::Write as _;

use crate::http::Encoding;
use crate::rng::Rng;

/// A product.
#[derive(Clone, Debug)]
pub struct Product {
    /// Id, as in `/product/{id}-{slug}`.
    pub id: u32,
    /// URL slug.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Price in cents.
    pub price_cents: u64,
    /// Category index.
    pub category: usize,
}

/// A category.
#[derive(Clone, Debug)]
pub struct Category {
    /// URL slug, as in `/c/{slug}`.
    pub slug: String,
    /// Display name.
    pub name: String,
    /// Product indexes.
    pub products: Vec<usize>,
}

/// What a resource is, for the answer key and for failure importance.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// An HTML page (a page view's document).
    Document,
    /// A JSON API call.
    Api,
    /// A form or JSON POST that changes state (cart, login, order).
    Post,
    /// A stylesheet.
    Css,
    /// A script.
    Js,
    /// An image.
    Image,
    /// A web font.
    Font,
}

impl ResourceKind {
    /// Whether a failure of this resource is something the user notices.
    /// Images are decoration: a broken image is a minor failure.
    pub fn important(self) -> bool {
        !matches!(self, ResourceKind::Image)
    }
}

/// A static asset.
#[derive(Clone, Debug)]
pub struct Asset {
    /// Path.
    pub path: String,
    /// Kind.
    pub kind: ResourceKind,
    /// Content-Type.
    pub content_type: &'static str,
    /// Body (decoded).
    pub body: Vec<u8>,
    /// ETag.
    pub etag: String,
}

/// The whole site.
pub struct Site {
    /// Host name requests carry.
    pub host: String,
    /// Categories.
    pub categories: Vec<Category>,
    /// Products.
    pub products: Vec<Product>,
    /// Static assets by path.
    pub assets: HashMap<String, Asset>,
    /// Paths of the assets every page includes (css, js, font, logo).
    pub common_assets: Vec<String>,
    /// Text shown on error pages served with 200 OK.
    pub error_text: String,
    encoded: HashMap<(String, Encoding), std::rc::Rc<Vec<u8>>>,
    /// Scale of generated body sizes (1.0 = realistic).
    scale: f64,
}

const WORDS: &[&str] = &[
    "linen", "cotton", "classic", "modern", "soft", "everyday", "premium", "organic", "slim", "relaxed", "vintage",
    "travel", "weekend", "studio", "coastal", "urban", "merino", "canvas", "leather", "recycled", "bamboo", "light",
    "warm", "bright",
];
const NOUNS: &[&str] = &[
    "shirt", "jacket", "sneaker", "backpack", "scarf", "hoodie", "jeans", "mug", "lamp", "blanket", "watch", "wallet",
    "bottle", "cap", "sweater", "tote", "belt", "sock", "towel", "notebook",
];
const CATEGORIES: &[&str] = &["women", "men", "home", "accessories", "outdoor", "kids", "sale", "new-in"];

impl Site {
    /// A site generated from `rng`: `n_products` products in eight
    /// categories. `scale` shrinks or grows every body (samples use small
    /// bodies to stay small).
    pub fn new(rng: &mut Rng, host: &str, n_products: usize, error_text: &str, scale: f64) -> Site {
        let scale = scale.clamp(0.01, 10.0);
        let mut categories: Vec<Category> = CATEGORIES
            .iter()
            .map(|c| Category { slug: (*c).to_string(), name: title(c), products: Vec::new() })
            .collect();
        let mut products = Vec::new();
        for i in 0..n_products.max(8) {
            let adj = rng.pick(WORDS);
            let noun = rng.pick(NOUNS);
            let cat = i % categories.len();
            let id = 1000 + i as u32 * 7;
            // Prices end in .99, .50 or .00 as shops do.
            let base = rng.range(5, 180);
            let cents = *rng.pick(&[99u64, 50, 0]);
            products.push(Product {
                id,
                slug: format!("{adj}-{noun}"),
                name: format!("{} {}", title(adj), title(noun)),
                price_cents: base * 100 + cents,
                category: cat,
            });
            categories[cat].products.push(i);
        }
        let mut site = Site {
            host: host.to_string(),
            categories,
            products,
            assets: HashMap::new(),
            common_assets: Vec::new(),
            error_text: error_text.to_string(),
            encoded: HashMap::new(),
            scale,
        };
        let css = site.text_asset(rng, "/static/site.css", ResourceKind::Css, "text/css", 40_000);
        let js = site.text_asset(rng, "/static/app.js", ResourceKind::Js, "application/javascript", 90_000);
        let font = site.binary_asset(rng, "/static/font.woff2", ResourceKind::Font, "font/woff2", 30_000);
        let logo = site.binary_asset(rng, "/img/logo.png", ResourceKind::Image, "image/png", 8_000);
        site.common_assets = vec![css, js, font, logo];
        let ids: Vec<u32> = site.products.iter().map(|p| p.id).collect();
        for id in ids {
            let size = rng.range(6_000, 60_000) as usize;
            site.binary_asset(rng, &format!("/img/p/{id}.jpg"), ResourceKind::Image, "image/jpeg", size);
        }
        site
    }

    fn sized(&self, n: usize) -> usize {
        ((n as f64) * self.scale).max(64.0) as usize
    }

    fn text_asset(&mut self, rng: &mut Rng, path: &str, kind: ResourceKind, ct: &'static str, size: usize) -> String {
        let size = self.sized(size);
        let mut body = String::with_capacity(size + 64);
        let mut i = 0;
        while body.len() < size {
            if kind == ResourceKind::Css {
                let _ = writeln!(body, ".c{i} {{ margin: {}px; color: #{}; }}", rng.below(40), rng.hex(6));
            } else {
                let _ = writeln!(body, "function f{i}(a) {{ return a * {} + {}; }}", rng.below(100), rng.below(1000));
            }
            i += 1;
        }
        self.add_asset(rng, path, kind, ct, body.into_bytes())
    }

    fn binary_asset(&mut self, rng: &mut Rng, path: &str, kind: ResourceKind, ct: &'static str, size: usize) -> String {
        let size = self.sized(size);
        let mut filler = vec![0u8; size];
        rng.fill(&mut filler);
        // Structurally valid files (so protocol analysers that look inside
        // bodies do not report them as malformed) carrying random bytes.
        let body = match ct {
            "image/jpeg" => jpeg(&filler),
            "image/png" => png(&filler),
            _ => {
                let mut b = b"wOF2".to_vec();
                b.extend_from_slice(&filler);
                b
            }
        };
        self.add_asset(rng, path, kind, ct, body)
    }

    fn add_asset(&mut self, rng: &mut Rng, path: &str, kind: ResourceKind, ct: &'static str, body: Vec<u8>) -> String {
        let etag = format!("\"{}\"", rng.hex(16));
        self.assets.insert(path.to_string(), Asset { path: path.to_string(), kind, content_type: ct, body, etag });
        path.to_string()
    }

    /// The canonical URL of a product page.
    pub fn product_url(&self, i: usize) -> String {
        let p = &self.products[i];
        format!("/product/{}-{}", p.id, p.slug)
    }

    /// The short URL of a product (answered with a 301 to the canonical).
    pub fn product_short_url(&self, i: usize) -> String {
        format!("/p/{}", self.products[i].id)
    }

    /// The URL of a category.
    pub fn category_url(&self, c: usize) -> String {
        format!("/c/{}", self.categories[c].slug)
    }

    /// Product images a page shows.
    pub fn page_images(&self, page: &PageRef) -> Vec<String> {
        let ids: Vec<u32> = match page {
            PageRef::Home => self.products.iter().take(6).map(|p| p.id).collect(),
            PageRef::Category(c) => self.categories[*c].products.iter().take(8).map(|i| self.products[*i].id).collect(),
            PageRef::Product(i) => {
                let p = &self.products[*i];
                let mut v = vec![p.id];
                v.extend(
                    self.categories[p.category]
                        .products
                        .iter()
                        .filter(|j| **j != *i)
                        .take(3)
                        .map(|j| self.products[*j].id),
                );
                v
            }
            PageRef::Cart(items) | PageRef::Checkout(items) => {
                items.iter().map(|(i, _)| self.products[*i].id).collect()
            }
            _ => Vec::new(),
        };
        ids.into_iter().map(|id| format!("/img/p/{id}.jpg")).collect()
    }

    /// The HTML of a page (decoded). `error` replaces the content with the
    /// site's error text (an error page served with 200 OK) when set.
    pub fn page_html(&self, page: &PageRef, error: bool) -> Vec<u8> {
        let mut h = String::with_capacity(8192);
        let title_text = match page {
            PageRef::Home => "Home".to_string(),
            PageRef::Category(c) => self.categories[*c].name.clone(),
            PageRef::Product(i) => self.products[*i].name.clone(),
            PageRef::Cart(_) => "Your cart".to_string(),
            PageRef::Checkout(_) => "Checkout".to_string(),
            PageRef::Confirm { .. } => "Thank you for your order".to_string(),
            PageRef::Login => "Sign in".to_string(),
            PageRef::NotFound => "Page not found".to_string(),
            PageRef::ServerError(code) => format!("{code} {}", crate::http::reason(*code)),
        };
        let _ = write!(
            h,
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title_text} | Shop</title>\n\
             <link rel=\"stylesheet\" href=\"/static/site.css\"><script src=\"/static/app.js\" defer></script></head>\n\
             <body><header><img src=\"/img/logo.png\" alt=\"Shop\"><nav>"
        );
        for c in &self.categories {
            let _ = write!(h, "<a href=\"/c/{}\">{}</a> ", c.slug, c.name);
        }
        h.push_str("</nav></header>\n<main>");
        if error {
            let _ = write!(h, "<div class=\"error\"><h1>{}</h1><p>Please try again later.</p></div>", self.error_text);
        } else {
            match page {
                PageRef::Home | PageRef::Category(_) => {
                    let list: Vec<usize> = match page {
                        PageRef::Category(c) => self.categories[*c].products.clone(),
                        _ => (0..self.products.len().min(12)).collect(),
                    };
                    for i in list {
                        let p = &self.products[i];
                        let _ = writeln!(
                            h,
                            "<div class=\"tile\"><a href=\"{}\"><img src=\"/img/p/{}.jpg\">{}</a><span class=\"price\">${}.{:02}</span></div>",
                            self.product_url(i),
                            p.id,
                            p.name,
                            p.price_cents / 100,
                            p.price_cents % 100
                        );
                    }
                }
                PageRef::Product(i) => {
                    let p = &self.products[*i];
                    let _ = write!(
                        h,
                        "<h1>{}</h1><img src=\"/img/p/{}.jpg\"><p class=\"price\" data-price=\"{}.{:02}\">${}.{:02}</p>\
                         <form method=\"post\" action=\"/cart/add\"><input type=\"hidden\" name=\"product\" value=\"{}\">\
                         <button>Add to cart</button></form>",
                        p.name,
                        p.id,
                        p.price_cents / 100,
                        p.price_cents % 100,
                        p.price_cents / 100,
                        p.price_cents % 100,
                        p.id
                    );
                }
                PageRef::Cart(items) | PageRef::Checkout(items) => {
                    let mut total = 0;
                    h.push_str("<table class=\"cart\">");
                    for (i, q) in items {
                        let p = &self.products[*i];
                        total += p.price_cents * u64::from(*q);
                        let _ = write!(
                            h,
                            "<tr><td>{}</td><td>{q}</td><td>${}.{:02}</td></tr>",
                            p.name,
                            p.price_cents / 100,
                            p.price_cents % 100
                        );
                    }
                    let _ = write!(h, "</table><p class=\"total\">Total: ${}.{:02}</p>", total / 100, total % 100);
                    if matches!(page, PageRef::Checkout(_)) {
                        h.push_str(
                            "<form method=\"post\" action=\"/checkout/submit\"><input name=\"card_number\">\
                             <input name=\"cvv\"><button>Place order</button></form>",
                        );
                    }
                }
                PageRef::Confirm { order, total_cents } => {
                    let _ = write!(
                        h,
                        "<h1>Thank you!</h1><p>Order <b>{order}</b> is confirmed. Order total: ${}.{:02}</p>",
                        total_cents / 100,
                        total_cents % 100
                    );
                }
                PageRef::Login => {
                    h.push_str("<form method=\"post\" action=\"/login\"><input name=\"username\"><input name=\"password\" type=\"password\"><button>Sign in</button></form>");
                }
                PageRef::NotFound => {
                    h.push_str("<h1>Page not found</h1><p>The page you are looking for does not exist.</p>")
                }
                PageRef::ServerError(code) => {
                    let _ = write!(h, "<h1>{code} {}</h1>", crate::http::reason(*code));
                }
            }
        }
        // Filler text: real pages carry descriptions, reviews, footers.
        let target = self.sized(match page {
            PageRef::NotFound | PageRef::ServerError(_) => 800,
            _ => 14_000,
        });
        let mut seed = target as u64 ^ (title_text.len() as u64) << 7;
        h.push_str("<section class=\"about\"><p>");
        while h.len() < target {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let w = WORDS[(seed >> 33) as usize % WORDS.len()];
            let n = NOUNS[(seed >> 45) as usize % NOUNS.len()];
            let _ = write!(h, "{w} {n} ");
        }
        h.push_str("</p></section></main><footer>&copy; Shop</footer></body></html>\n");
        h.into_bytes()
    }

    /// `body` encoded with `enc`, cached by `key` (bodies are deterministic
    /// per key). The cache is cleared when it grows large.
    pub fn encoded(&mut self, key: &str, enc: Encoding, body: &[u8]) -> std::rc::Rc<Vec<u8>> {
        if enc == Encoding::Identity {
            return std::rc::Rc::new(body.to_vec());
        }
        let k = (key.to_string(), enc);
        if let Some(v) = self.encoded.get(&k) {
            return v.clone();
        }
        if self.encoded.len() > 4096 {
            self.encoded.clear();
        }
        let v = std::rc::Rc::new(enc.encode(body));
        self.encoded.insert(k, v.clone());
        v
    }
}

/// A page of the shop.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PageRef {
    /// `/`
    Home,
    /// `/c/{slug}`
    Category(usize),
    /// `/product/{id}-{slug}`
    Product(usize),
    /// `/cart`
    Cart(Vec<(usize, u32)>),
    /// `/checkout`
    Checkout(Vec<(usize, u32)>),
    /// `/order/confirm?order=...`
    Confirm {
        /// Order id.
        order: String,
        /// Order total in cents.
        total_cents: u64,
    },
    /// `/login`
    Login,
    /// A 404 page.
    NotFound,
    /// A 5xx page.
    ServerError(u16),
}

fn title(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

/// Formats cents as `12.34`.
pub fn money(cents: u64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// A JPEG/JFIF file: SOI, APP0, the filler in comment segments, EOI.
fn jpeg(filler: &[u8]) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
    b.extend_from_slice(b"JFIF\0");
    b.extend_from_slice(&[1, 1, 0, 0, 1, 0, 1, 0, 0]);
    for c in filler.chunks(65_000) {
        b.extend_from_slice(&[0xFF, 0xFE]);
        b.extend_from_slice(&((c.len() + 2) as u16).to_be_bytes());
        b.extend_from_slice(c);
    }
    b.extend_from_slice(&[0xFF, 0xD9]);
    b
}

/// A PNG file: signature, IHDR, the filler in IDAT chunks, IEND, each
/// chunk with its CRC.
fn png(filler: &[u8]) -> Vec<u8> {
    fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        out.extend_from_slice(kind);
        out.extend_from_slice(data);
        let mut crc = flate2::Crc::new();
        crc.update(kind);
        crc.update(data);
        out.extend_from_slice(&crc.sum().to_be_bytes());
    }
    let mut b = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&64u32.to_be_bytes());
    ihdr.extend_from_slice(&64u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(&mut b, b"IHDR", &ihdr);
    for c in filler.chunks(8192) {
        chunk(&mut b, b"IDAT", c);
    }
    chunk(&mut b, b"IEND", &[]);
    b
}
